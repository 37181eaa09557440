-- The crash-loop guard: how many times a delivery of this key reached a
-- handler after arriving with the broker's `redelivered` flag, without the
-- handling finishing. Rows exist only while such a delivery is unfinished.
CREATE TABLE ${schema}.handling_started (
    handler          text        NOT NULL,
    idempotency_key  text        NOT NULL,
    deliveries       integer     NOT NULL,
    last_started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, idempotency_key)
);
