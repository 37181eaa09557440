-- The inbox: one row per (handler, idempotency key) whose effect has
-- committed. The primary key is what makes a second delivery a duplicate.
CREATE TABLE ${schema}.inbox (
    handler          text        NOT NULL,
    idempotency_key  text        NOT NULL,
    body_sha256      bytea       NOT NULL CHECK (octet_length(body_sha256) = 32),
    message_id       text        NOT NULL,
    correlation_id   text        NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, idempotency_key)
);

-- Retention deletes by age.
CREATE INDEX inbox_received_at ON ${schema}.inbox (received_at);
