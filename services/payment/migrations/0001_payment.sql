-- The payment service's tables (schema payment). Amounts are whole đồng (BIGINT, VND only).

CREATE TABLE payment.intents (
    id uuid PRIMARY KEY,
    merchant_id uuid NOT NULL,
    -- PM + 10 base32 + check character (see src/reference.rs).
    reference text NOT NULL UNIQUE CHECK (reference ~ '^PM[0-9A-Z]{11}$'),
    amount bigint NOT NULL CHECK (amount > 0 AND amount <= 999999999999999999),
    amount_received bigint NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
    order_reference text NOT NULL,
    -- ACTIVE, PAID, CANCELLED (EXPIRED is ACTIVE past expire_time, computed when read).
    status text NOT NULL CHECK (status IN ('ACTIVE', 'PAID', 'CANCELLED')),
    qr_payload text NOT NULL,
    expire_time timestamptz NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);
CREATE INDEX intents_by_merchant ON payment.intents (merchant_id, create_time);

-- Every credit a bank notified, once per (bank, bank transaction). The id is derived from the
-- pair, and so are the ids of its ledger transfers: a retry posts the same transfers.
CREATE TABLE payment.credits (
    id uuid PRIMARY KEY,
    bank_bin text NOT NULL CHECK (bank_bin ~ '^[0-9]{6}$'),
    bank_transaction_id text NOT NULL,
    account_number text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    description text NOT NULL,
    value_time timestamptz NOT NULL,
    receive_time timestamptz NOT NULL,
    outcome text NOT NULL,
    detail text NOT NULL,
    merchant_id uuid,
    intent_id uuid REFERENCES payment.intents (id),
    UNIQUE (bank_bin, bank_transaction_id),
    CHECK ((outcome = 'SUSPENSE') = (merchant_id IS NULL))
);
CREATE INDEX credits_in_suspense ON payment.credits (receive_time) WHERE outcome = 'SUSPENSE';

-- A credit paid to a merchant (same id as its credit).
CREATE TABLE payment.payments (
    id uuid PRIMARY KEY REFERENCES payment.credits (id),
    merchant_id uuid NOT NULL,
    intent_id uuid REFERENCES payment.intents (id),
    outcome text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    fee bigint NOT NULL CHECK (fee >= 0 AND fee <= amount),
    fee_plan text NOT NULL,
    create_time timestamptz NOT NULL,
    -- Strictly increasing per merchant in commit order (taken under the merchant's stream row
    -- lock): what ListPayments pages by, newest first.
    seq bigint NOT NULL,
    UNIQUE (merchant_id, seq)
);
CREATE INDEX payments_by_merchant_time ON payment.payments (merchant_id, create_time);

-- One row per merchant: the last event number. Taking the next number locks the row until
-- commit, so a merchant's events commit in number order and a cursor never skips one.
CREATE TABLE payment.streams (
    merchant_id uuid PRIMARY KEY,
    last_seq bigint NOT NULL
);

CREATE TABLE payment.events (
    merchant_id uuid NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    -- The encoded PaymentEvent (without its cursor).
    body bytea NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, seq)
);
