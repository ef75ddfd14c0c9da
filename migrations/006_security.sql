-- Security of the runner service: users, refresh tokens, encrypted broker credentials, audit log.

-- Users of the API. Passwords are argon2id hashes (the PHC string carries its own salt and cost).
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9_.@-]{0,63}$'),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role text NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Refresh tokens: only a SHA-256 of each opaque token is kept. A refresh rotates the token (the
-- old one is revoked with reason 'rotated'); presenting a revoked token again revokes its family.
CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY,
    family uuid NOT NULL,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > issued_at),
    revoked_at timestamptz,
    revoked_reason text,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Broker API credentials: one Fernet token per exchange holding the key and the secret (and the
-- exchange id, checked on decryption, so a ciphertext moved to another row is refused).
-- key_fingerprint names the master key that encrypted the row (a truncated SHA-256 of it).
CREATE TABLE broker_credentials (
    exchange text PRIMARY KEY CHECK (exchange ~ '^[a-z0-9_]{1,64}$'),
    ciphertext bytea NOT NULL,
    key_fingerprint text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Who did what, when, to what, and how it ended. Append-only: updates, deletes and truncation are
-- refused by triggers (only a superuser dropping the triggers can rewrite history).
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time timestamptz NOT NULL,
    username text NOT NULL,
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'error')),
    client text,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_user_time ON audit_log (username, time);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
