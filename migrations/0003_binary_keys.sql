-- Keys and ids are bytes from the wire. Stored as bytea, byte for byte, no
-- two different keys can compare equal (a NUL no longer truncates one), and
-- no id is refused for not being valid UTF-8.
ALTER TABLE ${schema}.inbox
    ALTER COLUMN idempotency_key TYPE bytea USING convert_to(idempotency_key, 'UTF8'),
    ALTER COLUMN message_id TYPE bytea USING convert_to(message_id, 'UTF8'),
    ALTER COLUMN correlation_id TYPE bytea USING convert_to(correlation_id, 'UTF8');

-- The crash-loop guard now knows a message by the SHA-256 of its id and body,
-- so that it can mark a delivery before the handler's key function runs
-- (a key function may be what crashes). Its rows only live while a delivery
-- is unfinished, so the old ones are not carried over.
DROP TABLE ${schema}.handling_started;
CREATE TABLE ${schema}.handling_started (
    handler          text        NOT NULL,
    delivery_sha256  bytea       NOT NULL CHECK (octet_length(delivery_sha256) = 32),
    message_id       bytea       NOT NULL,
    deliveries       integer     NOT NULL,
    last_started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, delivery_sha256)
);
