-- The ledger's tables. Amounts are integer minor units of the row's ISO 4217 currency.
-- Balances are kept on the account row and changed once per group-commit transaction.

CREATE TABLE ledger.accounts (
    id uuid PRIMARY KEY,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    code bigint NOT NULL CHECK (code >= 0 AND code <= 4294967295),
    flags smallint NOT NULL CHECK (flags >= 0 AND flags <= 3),
    reference text NOT NULL CHECK (char_length(reference) <= 64),
    debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The balance limits hold in the database too, not only in the engine.
    CONSTRAINT debits_must_not_exceed_credits
        CHECK (flags & 1 = 0 OR debits_posted::numeric + debits_pending <= credits_posted),
    CONSTRAINT credits_must_not_exceed_debits
        CHECK (flags & 2 = 0 OR credits_posted::numeric + credits_pending <= debits_posted)
);

-- Append-only. No foreign keys: the writer has every referenced account row locked
-- (SELECT … FOR UPDATE) in the same transaction, and a per-row key-share lock on the hot
-- clearing account is exactly the cost group commit avoids.
CREATE TABLE ledger.transfers (
    id uuid PRIMARY KEY,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    code smallint NOT NULL CHECK (code > 0),
    reference text NOT NULL CHECK (char_length(reference) <= 64),
    -- 1 linked, 2 pending, 4 post_pending, 8 void_pending,
    -- 16 amount taken from the pending transfer, 32 accounts taken from the pending transfer
    flags smallint NOT NULL,
    pending_id uuid,
    timeout_seconds integer NOT NULL DEFAULT 0 CHECK (timeout_seconds >= 0),
    -- nanoseconds since the Unix epoch, strictly increasing within one writer
    ts bigint NOT NULL,
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((flags & 12 = 0) = (pending_id IS NULL))
);
CREATE INDEX transfers_debit_ts ON ledger.transfers (debit_account_id, ts, id);
CREATE INDEX transfers_credit_ts ON ledger.transfers (credit_account_id, ts, id);

-- Two-phase state of pending transfers: 1 pending, 2 posted, 3 voided, 4 expired.
CREATE TABLE ledger.pending_transfers (
    id uuid PRIMARY KEY,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    expires_at bigint,
    status smallint NOT NULL CHECK (status BETWEEN 1 AND 4)
);
CREATE INDEX pending_transfers_expiry ON ledger.pending_transfers (expires_at)
    WHERE status = 1 AND expires_at IS NOT NULL;
