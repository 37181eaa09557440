-- The transactional outbox. A handler (or any code with a transaction)
-- stages an outgoing message here in its own transaction; the relay
-- publishes rows once they are committed, with publisher confirms, and moves
-- each confirmed row to outbox_published. Pending rows only live until they
-- are confirmed, so this table stays small under any load.
--
-- Every value from a message is bytes (bytea): ids, keys and routing keys
-- may come from the wire, and nothing is refused for not being UTF-8.
CREATE TABLE ${schema}.outbox (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: no order with any other row. Rows of one key are published one
    -- at a time, in id order.
    ordering_key     bytea,
    exchange         bytea       NOT NULL,
    routing_key      bytea       NOT NULL,
    message_id       bytea       NOT NULL,
    -- AMQP properties and headers in the DLQ export format (byte-exact),
    -- as JSON text: jsonb refuses a \u0000 escape, which a NUL byte in a
    -- carried-over correlation id or header becomes.
    properties       text        NOT NULL,
    body             bytea       NOT NULL,
    -- The handler that staged it; NULL when staged outside a handler.
    staged_by        text,
    staged_at        timestamptz NOT NULL DEFAULT now(),
    -- Failed publishes (nacked, returned, refused): retried with backoff
    -- from next_attempt_at, parked after the relay's limit.
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    parked_at        timestamptz
);
CREATE INDEX outbox_ordering_key ON ${schema}.outbox (ordering_key, id) WHERE ordering_key IS NOT NULL;

-- What the relay published, for trace and audit, pruned after the
-- retention window. Append-only: no row here is ever updated.
CREATE TABLE ${schema}.outbox_published (
    id               bigint      PRIMARY KEY,
    ordering_key     bytea,
    exchange         bytea       NOT NULL,
    routing_key      bytea       NOT NULL,
    message_id       bytea       NOT NULL,
    staged_by        text,
    staged_at        timestamptz NOT NULL,
    published_at     timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL,
    relay            text        NOT NULL,
    epoch            bigint      NOT NULL
);
CREATE INDEX outbox_published_at ON ${schema}.outbox_published (published_at);
CREATE INDEX outbox_published_message_id ON ${schema}.outbox_published (message_id);

-- Which relay owns the outbox: a lease renewed by heartbeats; each new
-- owner increments the epoch, which fences the writes of a stale one.
CREATE TABLE ${schema}.outbox_lease (
    name        text        PRIMARY KEY,
    owner       text,
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO ${schema}.outbox_lease (name) VALUES ('relay');
