-- Refunds and returns (payout instructions), what operators did with credits in suspense, and
-- the outgoing webhooks' endpoints and outbox.

-- A credit held in suspense is assigned to a merchant (then it has one) or returned.
ALTER TABLE payment.credits
    ADD COLUMN resolution text NOT NULL DEFAULT 'NONE'
        CHECK (resolution IN ('NONE', 'ASSIGNED', 'RETURNED')),
    ADD COLUMN resolved_by text NOT NULL DEFAULT '',
    ADD COLUMN resolution_reason text NOT NULL DEFAULT '',
    ADD COLUMN resolve_time timestamptz;
ALTER TABLE payment.credits DROP CONSTRAINT credits_check;
ALTER TABLE payment.credits ADD CONSTRAINT credits_merchant_unless_suspense
    CHECK ((outcome = 'SUSPENSE' AND resolution <> 'ASSIGNED') = (merchant_id IS NULL));
ALTER TABLE payment.credits ADD CONSTRAINT credits_resolved_from_suspense
    CHECK (resolution = 'NONE' OR outcome = 'SUSPENSE');
DROP INDEX payment.credits_in_suspense;
CREATE INDEX credits_unresolved ON payment.credits (receive_time, id)
    WHERE outcome = 'SUSPENSE' AND resolution = 'NONE';

-- Every operator action on a credit in suspense, append-only.
CREATE TABLE payment.credit_actions (
    credit_id uuid NOT NULL REFERENCES payment.credits (id),
    action text NOT NULL CHECK (action IN ('ASSIGN', 'RETURN', 'RETURN_FAILED')),
    actor text NOT NULL,
    reason text NOT NULL,
    merchant_id uuid,
    refund_id uuid,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX credit_actions_by_credit ON payment.credit_actions (credit_id, create_time);

-- What PENDING and COMPLETED refunds of a payment add up to (never more than the payment),
-- and the part of its fee they gave back (all of it when the whole payment is refunded).
ALTER TABLE payment.payments
    ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0
        CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    ADD COLUMN fee_refunded bigint NOT NULL DEFAULT 0
        CHECK (fee_refunded >= 0 AND fee_refunded <= fee);

-- A refund (of a payment) or a return (of a credit in suspense): a pending ledger transfer to
-- the bank's payout account and the payout instruction the bank reads.
CREATE TABLE payment.refunds (
    id uuid PRIMARY KEY,
    -- Queue order (oldest first) for the bank reading its payout instructions.
    number bigserial NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('REFUND', 'RETURN')),
    credit_id uuid NOT NULL REFERENCES payment.credits (id),
    payment_id uuid REFERENCES payment.payments (id),
    merchant_id uuid,
    amount bigint NOT NULL CHECK (amount > 0),
    -- The part of the payment's fee given back with this refund.
    fee_returned bigint NOT NULL DEFAULT 0 CHECK (fee_returned >= 0 AND fee_returned <= amount),
    reason text NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    failure_reason text NOT NULL DEFAULT '',
    bank_bin text NOT NULL,
    requested_by text NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    CHECK ((kind = 'REFUND') = (payment_id IS NOT NULL)),
    CHECK ((kind = 'REFUND') = (merchant_id IS NOT NULL))
);
CREATE INDEX refunds_by_payment ON payment.refunds (payment_id, number);
CREATE INDEX refunds_by_merchant ON payment.refunds (merchant_id, number);
CREATE INDEX refunds_by_bank ON payment.refunds (bank_bin, status, number);

-- Where a merchant's events are POSTed, and the key they are signed with.
CREATE TABLE payment.webhook_endpoints (
    merchant_id uuid PRIMARY KEY,
    url text NOT NULL,
    secret text NOT NULL,
    update_time timestamptz NOT NULL
);

-- One delivery per event of a merchant with an endpoint, written in the event's transaction.
CREATE TABLE payment.outbox (
    -- The event id the merchant deduplicates on.
    id uuid PRIMARY KEY,
    merchant_id uuid NOT NULL,
    seq bigint NOT NULL,
    -- The JSON body POSTed (exactly these bytes are signed).
    body text NOT NULL,
    status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_time timestamptz NOT NULL,
    last_error text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL,
    deliver_time timestamptz,
    UNIQUE (merchant_id, seq)
);
CREATE INDEX outbox_due ON payment.outbox (next_attempt_time) WHERE status = 'PENDING';

-- Signatures of banks' webhooks seen in the last minutes: a request seen before is a replay.
CREATE TABLE payment.bank_webhook_seen (
    bank_bin text NOT NULL,
    signature text NOT NULL,
    seen_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (bank_bin, signature)
);
CREATE INDEX bank_webhook_seen_by_time ON payment.bank_webhook_seen (seen_time);
