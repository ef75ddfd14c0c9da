-- The live order manager: a client order id prefix drawn once per database, and every reconciliation.

-- Client order ids are this prefix followed by `order_client_seq`. The prefix is random, drawn when
-- the database is created, so ids stay unique at a venue that outlives the database (a reset
-- database restarts the sequence, never the venue's memory of ids it saw).
CREATE TABLE order_client_prefix (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    prefix text NOT NULL CHECK (prefix ~ '^[A-Za-z][A-Za-z0-9]{3,11}$')
);
INSERT INTO order_client_prefix (prefix) VALUES ('r' || substr(md5(gen_random_uuid()::text), 1, 10));

-- Every start's comparison of the database with the venue: what differed, and whether trading could start.
CREATE TABLE reconciliations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time timestamptz NOT NULL,
    venue text NOT NULL,
    mode text NOT NULL,
    ok boolean NOT NULL,
    reason text NOT NULL DEFAULT '',
    differences jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX reconciliations_venue_time ON reconciliations (venue, time);

-- Active orders are loaded per venue and mode at start.
CREATE INDEX orders_venue_mode_active ON orders (venue, mode)
    WHERE status NOT IN ('filled', 'cancelled', 'rejected', 'expired');
CREATE INDEX fills_venue_mode ON fills (venue, mode);
