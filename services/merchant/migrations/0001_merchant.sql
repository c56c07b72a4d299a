-- The merchant service's tables (schema `merchant`). Every value was parsed by the domain types
-- before it got here; the CHECKs below restate the shapes the rest of the code relies on.

-- Virtual account numbers: the configured prefix, this sequence (10 digits) and a check digit.
CREATE SEQUENCE merchant.virtual_account_seq MINVALUE 1 MAXVALUE 9999999999 NO CYCLE;

CREATE TABLE merchant.merchants (
    id uuid PRIMARY KEY,
    -- Onboarding order: the key of ListMerchants' pages.
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind text NOT NULL CHECK (kind IN ('vendor', 'biller')),
    status text NOT NULL
        CHECK (status IN ('PENDING_REVIEW', 'ACTIVE', 'REJECTED', 'SUSPENDED', 'CLOSED')),
    business_name text NOT NULL CHECK (char_length(business_name) BETWEEN 1 AND 100),
    trading_name text CHECK (char_length(trading_name) BETWEEN 1 AND 100),
    tax_code text NOT NULL CHECK (tax_code ~ '^[0-9]{10}(-[0-9]{3})?$'),
    -- Personal data (DESIGN §7): never logged, masked in every response.
    owner_citizen_id text CHECK (owner_citizen_id ~ '^[0-9]{12}$'),
    phone text NOT NULL CHECK (char_length(phone) BETWEEN 1 AND 20),
    address text NOT NULL CHECK (char_length(address) BETWEEN 1 AND 200),
    market_name text CHECK (char_length(market_name) BETWEEN 1 AND 100),
    stall_number text CHECK (char_length(stall_number) BETWEEN 1 AND 20),
    mcc text NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),
    biller_category text CHECK (biller_category IN
        ('electricity', 'water', 'tuition', 'hospital_fee', 'administrative_fee')),
    settlement_bank_bin text NOT NULL CHECK (settlement_bank_bin ~ '^[0-9]{6}$'),
    settlement_account_number text NOT NULL CHECK (settlement_account_number ~ '^[0-9A-Za-z]{1,19}$'),
    -- Lower-case names without Vietnamese diacritics, for search.
    name_search text NOT NULL,
    market_search text,
    -- Set on the first approval, never changed afterwards.
    virtual_account_number text UNIQUE CHECK (virtual_account_number ~ '^[0-9]{1,19}$'),
    collection_bank_bin text CHECK (collection_bank_bin ~ '^[0-9]{6}$'),
    static_qr_payload text,
    payable_account_id uuid,
    receivable_account_id uuid,
    activated_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'vendor') = (market_name IS NOT NULL AND stall_number IS NOT NULL)),
    CHECK (kind = 'biller' OR owner_citizen_id IS NOT NULL),
    CHECK ((kind = 'biller') = (biller_category IS NOT NULL)),
    -- Activation is all or nothing: accounts, virtual account and QR together.
    CHECK (
        (activated_at IS NULL
            AND virtual_account_number IS NULL AND collection_bank_bin IS NULL
            AND static_qr_payload IS NULL AND payable_account_id IS NULL
            AND receivable_account_id IS NULL)
        OR
        (activated_at IS NOT NULL
            AND virtual_account_number IS NOT NULL AND collection_bank_bin IS NOT NULL
            AND static_qr_payload IS NOT NULL AND payable_account_id IS NOT NULL
            AND receivable_account_id IS NOT NULL)
    ),
    CHECK (status NOT IN ('ACTIVE', 'SUSPENDED') OR activated_at IS NOT NULL)
);

-- One live merchant per tax code: a second application while the first is pending, active or
-- suspended is a duplicate. A rejected or closed merchant may apply again.
CREATE UNIQUE INDEX merchants_live_tax_code ON merchant.merchants (tax_code)
    WHERE status NOT IN ('REJECTED', 'CLOSED');
CREATE INDEX merchants_status_seq ON merchant.merchants (status, seq);
CREATE INDEX merchants_market_seq ON merchant.merchants (market_search, seq)
    WHERE market_search IS NOT NULL;

-- Every change to a merchant, in the transaction that made it. Append-only: the trigger below
-- refuses UPDATE, DELETE and TRUNCATE for every role the application uses.
CREATE TABLE merchant.audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES merchant.merchants (id),
    actor text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 80),
    action text NOT NULL CHECK (action IN (
        'ONBOARD', 'APPROVE', 'REJECT', 'SUSPEND', 'REINSTATE', 'CLOSE',
        'RESUBMIT_FOR_REVIEW', 'UPDATE', 'ISSUE_CREDENTIAL', 'REVOKE_CREDENTIAL')),
    from_status text,
    to_status text NOT NULL,
    reason text NOT NULL CHECK (char_length(reason) <= 1000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_merchant ON merchant.audit_events (merchant_id, id);

CREATE FUNCTION merchant.audit_events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'merchant.audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON merchant.audit_events
    FOR EACH ROW EXECUTE FUNCTION merchant.audit_events_are_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON merchant.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION merchant.audit_events_are_append_only();

-- API credentials: only the SHA-256 of the secret is kept.
CREATE TABLE merchant.credentials (
    id uuid PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    merchant_id uuid NOT NULL REFERENCES merchant.merchants (id),
    display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_by text,
    revoked_at timestamptz,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX credentials_merchant ON merchant.credentials (merchant_id, seq);
