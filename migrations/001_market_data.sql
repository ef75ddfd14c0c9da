-- Instruments, ticks (trades) and bars. Time columns are timestamptz; unique keys make writes idempotent.

CREATE TABLE instruments (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue text NOT NULL,
    symbol text NOT NULL,
    asset_class text NOT NULL DEFAULT 'crypto',
    base text,
    quote text,
    currency text NOT NULL DEFAULT 'USD',
    tick_size numeric NOT NULL CHECK (tick_size > 0),
    qty_step numeric NOT NULL CHECK (qty_step > 0),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (venue, symbol)
);

-- One row per trade. side: 1 buy (taker bought), -1 sell, 0 unknown.
CREATE TABLE ticks (
    instrument_id integer NOT NULL REFERENCES instruments (id),
    time timestamptz NOT NULL,
    trade_id text NOT NULL,
    price double precision NOT NULL CHECK (price > 0 AND price < 'Infinity'::float8),
    size double precision NOT NULL CHECK (size > 0 AND size < 'Infinity'::float8),
    side smallint NOT NULL DEFAULT 0 CHECK (side IN (-1, 0, 1)),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instrument_id, time, trade_id)
);

-- One row per instrument, timeframe and bar open time.
CREATE TABLE bars (
    instrument_id integer NOT NULL REFERENCES instruments (id),
    timeframe text NOT NULL CHECK (timeframe IN ('1s', '1m', '5m', '15m', '1h', '1d')),
    open_time timestamptz NOT NULL,
    open double precision NOT NULL CHECK (open > 0),
    high double precision NOT NULL CHECK (high > 0),
    low double precision NOT NULL CHECK (low > 0),
    close double precision NOT NULL CHECK (close > 0),
    volume double precision NOT NULL CHECK (volume >= 0),
    vwap double precision,
    trades integer NOT NULL DEFAULT 0 CHECK (trades >= 0),
    PRIMARY KEY (instrument_id, timeframe, open_time),
    CHECK (low <= high)
);
