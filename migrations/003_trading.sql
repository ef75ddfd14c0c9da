-- Trading state: strategy instances, orders and their events, fills, risk, equity.
-- Orders and fills are written synchronously; an order intent is committed before it is sent.

CREATE TABLE strategy_instances (
    id text PRIMARY KEY,
    strategy text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    venue text NOT NULL,
    symbols text[] NOT NULL,
    timeframe text NOT NULL,
    capital numeric NOT NULL CHECK (capital > 0),
    state text NOT NULL DEFAULT 'stopped' CHECK (state IN ('stopped', 'running', 'paused', 'disabled')),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE order_client_seq;

CREATE TABLE orders (
    client_id text PRIMARY KEY,
    strategy text NOT NULL,
    venue text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    type text NOT NULL CHECK (type IN ('market', 'limit')),
    quantity numeric NOT NULL CHECK (quantity > 0),
    limit_price numeric CHECK (limit_price > 0),
    mode text NOT NULL CHECK (mode IN ('backtest', 'replay', 'dev', 'paper', 'live')),
    status text NOT NULL,
    filled numeric NOT NULL DEFAULT 0 CHECK (filled >= 0),
    avg_price numeric,
    fees numeric NOT NULL DEFAULT 0,
    venue_order_id text,
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_active ON orders (status) WHERE status NOT IN ('filled', 'cancelled', 'rejected', 'expired');
CREATE INDEX orders_strategy_time ON orders (strategy, created_at);

-- Every state change of every order: the order's history is its events.
CREATE TABLE order_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id text NOT NULL REFERENCES orders (client_id),
    status text NOT NULL,
    detail text NOT NULL DEFAULT '',
    time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_client ON order_events (client_id, id);

CREATE TABLE fills (
    venue text NOT NULL,
    fill_id text NOT NULL,
    client_id text NOT NULL REFERENCES orders (client_id),
    strategy text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity numeric NOT NULL CHECK (quantity > 0),
    price numeric NOT NULL CHECK (price > 0),
    fee numeric NOT NULL DEFAULT 0,
    mode text NOT NULL,
    time timestamptz NOT NULL,
    PRIMARY KEY (venue, fill_id)
);
CREATE INDEX fills_strategy_symbol ON fills (strategy, symbol, time);

-- Risk: limits (global when strategy = '*'), the trading state, and every refusal with its rule.
CREATE TABLE risk_limits (
    strategy text PRIMARY KEY,
    limits jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE risk_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    state text NOT NULL CHECK (state IN ('active', 'reducing', 'halted')),
    reason text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO risk_state (state) VALUES ('active');

CREATE TABLE risk_refusals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    client_id text,
    strategy text NOT NULL,
    symbol text NOT NULL,
    rule text NOT NULL,
    reason text NOT NULL
);

CREATE TABLE equity_snapshots (
    strategy text NOT NULL,
    time timestamptz NOT NULL,
    equity numeric NOT NULL,
    cash numeric NOT NULL,
    realised_pnl numeric NOT NULL,
    unrealised_pnl numeric NOT NULL,
    PRIMARY KEY (strategy, time)
);
