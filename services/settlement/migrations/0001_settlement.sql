-- The settlement service's tables (schema settlement). Amounts are whole đồng (BIGINT, VND).

-- One window per business day: the transfers committed in [start_seq, cutoff_seq) (ledger
-- commit positions, ns since the epoch; the ledger's commit order is sealed at cutoff_seq).
CREATE TABLE settlement.windows (
    business_date date PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('OPEN', 'CLOSED', 'SETTLED', 'FAILED')),
    start_seq bigint NOT NULL,
    cutoff_seq bigint NOT NULL CHECK (cutoff_seq > start_seq),
    closed_by text NOT NULL,
    failure_reason text NOT NULL DEFAULT '',
    close_time timestamptz NOT NULL,
    settle_time timestamptz
);

-- One line per merchant or biller with movements in a window (or something carried in).
CREATE TABLE settlement.payouts (
    id uuid PRIMARY KEY,
    business_date date NOT NULL REFERENCES settlement.windows (business_date),
    merchant_id uuid NOT NULL,
    biller boolean NOT NULL,
    business_name text NOT NULL,
    bank_bin text NOT NULL,
    account_number text NOT NULL,
    gross bigint NOT NULL CHECK (gross >= 0),
    fees bigint NOT NULL,
    refunds bigint NOT NULL CHECK (refunds >= 0),
    adjustments bigint NOT NULL,
    -- PAYOUT debits of the window (earlier windows' payouts leaving the account).
    paid_out bigint NOT NULL CHECK (paid_out >= 0),
    -- What earlier windows left: a shortfall (< 0) or money held back for a pending refund (> 0).
    carried_in bigint NOT NULL,
    net bigint NOT NULL,
    payout bigint NOT NULL CHECK (payout >= 0),
    carried_out bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'NONE', 'POSTED', 'FAILED')),
    failure_reason text NOT NULL DEFAULT '',
    transfer_id uuid,
    UNIQUE (business_date, merchant_id, biller),
    -- Every đồng due is paid or carried.
    CHECK (payout + carried_out = net + carried_in),
    CHECK (net = gross - fees - refunds + adjustments)
);

-- What paymesh booked with a bank, one row per ledger transfer on the bank's clearing or
-- payout account committed in a window, with the credit's details; and one row per credit
-- the bank notified whose ledger transfer is missing (in_ledger = false).
CREATE TABLE settlement.bookings (
    id uuid PRIMARY KEY,
    bank_bin text NOT NULL,
    business_date date NOT NULL,
    -- Order in the day's files: the ledger commit position (credit's receive time without one).
    seq bigint NOT NULL,
    direction text NOT NULL CHECK (direction IN ('CRDT', 'DBIT')),
    amount bigint NOT NULL CHECK (amount > 0),
    code text NOT NULL,
    in_ledger boolean NOT NULL,
    bank_reference text NOT NULL,
    end_to_end_id text NOT NULL,
    reference text NOT NULL,
    batch text NOT NULL,
    description text NOT NULL,
    value_date date NOT NULL,
    -- The credit (payment service) it books, for a bank's incoming transfers.
    credit_id uuid
);
CREATE INDEX bookings_by_day ON settlement.bookings (bank_bin, business_date, seq, id);
CREATE INDEX bookings_by_credit ON settlement.bookings (credit_id) WHERE credit_id IS NOT NULL;

-- Each bank's day: the balances its statement files show.
CREATE TABLE settlement.bank_days (
    bank_bin text NOT NULL,
    business_date date NOT NULL,
    opening bigint NOT NULL,
    closing bigint NOT NULL,
    credit_count bigint NOT NULL,
    credit_sum bigint NOT NULL,
    debit_count bigint NOT NULL,
    debit_sum bigint NOT NULL,
    PRIMARY KEY (bank_bin, business_date),
    CHECK (closing = opening + credit_sum - debit_sum)
);

-- A file banks pull: its description, size and SHA-256. Its bytes are rendered again when
-- pulled (see src/files.rs: everything a file says is stored, and never changes).
CREATE TABLE settlement.files (
    id uuid PRIMARY KEY,
    bank_bin text NOT NULL,
    business_date date NOT NULL,
    format text NOT NULL,
    file_name text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,
    entry_count bigint NOT NULL,
    create_time timestamptz NOT NULL,
    -- The rendering the digest was taken with (files::RENDERER).
    renderer integer NOT NULL,
    UNIQUE (bank_bin, business_date, format)
);


-- A booking matched, once: by a statement line (its key, see src/import.rs) in a run, or
-- settled by an operator's resolution of a break (line_key = the exception's subject).
-- Written with COPY: a million-line statement adds a million rows.
-- Read through bookings (by their day), never by line: one index, the key.
CREATE TABLE settlement.matches (
    booking_id uuid PRIMARY KEY,
    line_key text NOT NULL,
    run_id uuid
);

CREATE TABLE settlement.runs (
    id uuid PRIMARY KEY,
    bank_bin text NOT NULL,
    format text NOT NULL,
    file_name text NOT NULL,
    sha256 text NOT NULL,
    from_date date,
    to_date date,
    lines bigint NOT NULL,
    already_matched bigint NOT NULL,
    matched bigint NOT NULL,
    missing_in_ledger bigint NOT NULL,
    missing_in_bank bigint NOT NULL,
    amount_mismatch bigint NOT NULL,
    duplicate bigint NOT NULL,
    breaks_closed bigint NOT NULL,
    created_by text NOT NULL,
    create_time timestamptz NOT NULL
);
CREATE INDEX runs_by_bank ON settlement.runs (bank_bin, create_time);

-- Every line of a run and every booking it left unmatched (the run's lists), 10,000 items
-- per row as tab-separated text (see store::encode_items): a million-line run is a hundred rows.
CREATE TABLE settlement.run_item_chunks (
    run_id uuid NOT NULL REFERENCES settlement.runs (id),
    chunk integer NOT NULL,
    first_n integer NOT NULL,
    items text NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
-- lz4, not the default pglz: a million-line run's lists compress at memory speed.
ALTER TABLE settlement.run_item_chunks ALTER COLUMN items SET COMPRESSION lz4;

-- A break, once per statement line or booking (a re-import finds it open, not anew).
CREATE TABLE settlement.exceptions (
    id uuid PRIMARY KEY,
    bank_bin text NOT NULL,
    run_id uuid NOT NULL REFERENCES settlement.runs (id),
    kind text NOT NULL,
    -- 'line:{line_key}' or 'booking:{id}'.
    subject text NOT NULL,
    side text NOT NULL,
    line bigint NOT NULL,
    amount bigint NOT NULL,
    direction text NOT NULL,
    value_date date NOT NULL,
    bank_reference text NOT NULL,
    end_to_end_id text NOT NULL,
    description text NOT NULL,
    booking_ids uuid[] NOT NULL,
    note text NOT NULL,
    status text NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
    resolution text NOT NULL DEFAULT '',
    resolution_note text NOT NULL DEFAULT '',
    resolution_reference text NOT NULL DEFAULT '',
    resolved_by text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL,
    resolve_time timestamptz,
    UNIQUE (bank_bin, subject)
);
CREATE INDEX exceptions_open ON settlement.exceptions (bank_bin, create_time) WHERE status = 'OPEN';
CREATE INDEX exceptions_by_run ON settlement.exceptions (run_id, create_time);

-- Every action on an exception, append-only: who, what, why, when.
CREATE TABLE settlement.exception_actions (
    exception_id uuid NOT NULL REFERENCES settlement.exceptions (id),
    action text NOT NULL,
    actor text NOT NULL,
    note text NOT NULL,
    reference text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX exception_actions_by_exception ON settlement.exception_actions (exception_id);
