-- Transfers get an order that is final at commit (`seq`), for ListTransfers to page by; and
-- the 18-digit bound of paymesh.common.v1.Money holds on balances in the database too.

-- The highest `seq` committed. A batch updates this one row as its last statement before
-- COMMIT, so batches that insert transfers commit one after another in `seq` order (the row
-- lock is held until the commit is visible): any reader that sees a transfer sees every
-- transfer with a smaller `seq`.
CREATE TABLE ledger.commit_seq (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n bigint NOT NULL
);

-- Unique and strictly increasing in commit order. Written as the row's `ts` (the batch's
-- timestamps are reserved in start order, so batches that commit in that order need no
-- rewrite) and moved up, in the committing transaction, for a batch that commits after one
-- with larger values. Never below `ts`.
ALTER TABLE ledger.transfers ADD COLUMN seq bigint;

-- Rows stored before this migration were all committed: their (ts, id) order is final. They
-- keep it, with `seq` >= `ts` and unique.
UPDATE ledger.transfers t SET seq = o.ts + o.k
FROM (SELECT id, ts, row_number() OVER (ORDER BY ts, id) - 1 AS k FROM ledger.transfers) o
WHERE t.id = o.id;

INSERT INTO ledger.commit_seq (n) SELECT coalesce(max(seq), 0) FROM ledger.transfers;

ALTER TABLE ledger.transfers ALTER COLUMN seq SET NOT NULL;
ALTER TABLE ledger.transfers ADD CONSTRAINT transfers_seq_not_below_ts CHECK (seq >= ts);

-- ListTransfers pages each side of an account by `seq`; the (account, ts, id) indexes served
-- the old order only.
CREATE INDEX transfers_debit_seq ON ledger.transfers (debit_account_id, seq);
CREATE INDEX transfers_credit_seq ON ledger.transfers (credit_account_id, seq);
DROP INDEX ledger.transfers_debit_ts;
DROP INDEX ledger.transfers_credit_ts;

-- Every balance field fits 18 digits, as Money on the wire does.
ALTER TABLE ledger.accounts
    ADD CONSTRAINT balances_fit_18_digits CHECK (
        debits_posted <= 999999999999999999 AND credits_posted <= 999999999999999999
        AND debits_pending <= 999999999999999999 AND credits_pending <= 999999999999999999);
