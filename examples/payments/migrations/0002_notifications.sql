-- The receiving end of the outbox chain: payments.notify turns each
-- "charged" event into one notification row, through its own inbox.
CREATE TABLE payments.notifications (
    charge_id     text   PRIMARY KEY,
    account       text   NOT NULL,
    amount_cents  bigint NOT NULL
);
