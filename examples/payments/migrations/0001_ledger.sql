-- The payments example's business tables. The ledger deliberately has no
-- unique constraint on message_id, and the balance is an increment: neither
-- is idempotent by itself. The inbox is what makes redelivery safe.
CREATE SCHEMA IF NOT EXISTS payments;

CREATE TABLE payments.ledger (
    id            bigserial   PRIMARY KEY,
    message_id    text        NOT NULL,
    account       text        NOT NULL,
    amount_cents  bigint      NOT NULL CHECK (amount_cents >= 0),
    booked_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments.balances (
    account        text   PRIMARY KEY,
    balance_cents  bigint NOT NULL
);
