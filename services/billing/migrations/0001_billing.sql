-- The billing service's tables (schema billing). Amounts are whole đồng (BIGINT, VND only);
-- dates are the biller's calendar days (Asia/Ho_Chi_Minh).

-- Each biller's policy (see src/policy.rs): set by an operator or the biller itself.
CREATE TABLE billing.policies (
    biller_id uuid PRIMARY KEY,
    customer_code_pattern text NOT NULL,
    amount_rule text NOT NULL CHECK (amount_rule IN ('EXACT', 'EXACT_AND_BELOW', 'EXACT_AND_ABOVE')),
    minimum_part bigint NOT NULL DEFAULT 0 CHECK (minimum_part >= 0),
    -- A late fee or discount is fixed (đồng) or basis points of the amount due, not both.
    late_fee_fixed bigint CHECK (late_fee_fixed > 0),
    late_fee_bp int CHECK (late_fee_bp BETWEEN 1 AND 10000),
    late_fee_days int NOT NULL DEFAULT 0 CHECK (late_fee_days >= 0),
    discount_fixed bigint CHECK (discount_fixed > 0),
    discount_bp int CHECK (discount_bp BETWEEN 1 AND 10000),
    discount_days int NOT NULL DEFAULT 0 CHECK (discount_days >= 0),
    expires_after_days int NOT NULL DEFAULT 0 CHECK (expires_after_days >= 0),
    updated_by text NOT NULL,
    update_time timestamptz NOT NULL,
    CHECK (late_fee_fixed IS NULL OR late_fee_bp IS NULL),
    CHECK (discount_fixed IS NULL OR discount_bp IS NULL)
);

-- Bills. `id` is what the bill's reference (PB…, the paper bill's QR purpose) carries.
CREATE TABLE billing.bills (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    biller_id uuid NOT NULL,
    bill_number text NOT NULL,
    customer_code text NOT NULL,
    period text NOT NULL,
    amount_due bigint NOT NULL CHECK (amount_due > 0 AND amount_due <= 999999999999),
    issue_date date NOT NULL,
    due_date date NOT NULL CHECK (due_date >= issue_date),
    customer_name text NOT NULL,
    description text NOT NULL,
    -- EXPIRED is OPEN or PARTIALLY_PAID past the biller's expiry, computed when read.
    status text NOT NULL CHECK (status IN ('OPEN', 'PARTIALLY_PAID', 'PAID', 'CANCELLED')),
    amount_paid bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    late_fee_paid bigint NOT NULL DEFAULT 0 CHECK (late_fee_paid >= 0),
    discount_given bigint NOT NULL DEFAULT 0 CHECK (discount_given >= 0),
    adjustments int NOT NULL DEFAULT 0,
    cancel_reason text,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    UNIQUE (biller_id, bill_number)
);
-- Lookups read a customer's outstanding bills.
CREATE INDEX bills_outstanding ON billing.bills (biller_id, customer_code)
    WHERE status IN ('OPEN', 'PARTIALLY_PAID');

-- Every change of a bill's amount (or other fields) before any payment: the explicit record
-- of an adjustment.
CREATE TABLE billing.adjustments (
    bill_id bigint NOT NULL REFERENCES billing.bills (id),
    old_amount bigint NOT NULL,
    new_amount bigint NOT NULL,
    adjusted_by text NOT NULL,
    adjust_time timestamptz NOT NULL
);
CREATE INDEX adjustments_by_bill ON billing.adjustments (bill_id);

-- Payments of bills. The id is derived from the idempotency key's scope (channels) or the
-- bank transaction (a paper bill's QR), and so are its ledger transfers.
CREATE TABLE billing.payments (
    id uuid PRIMARY KEY,
    bill_id bigint NOT NULL REFERENCES billing.bills (id),
    biller_id uuid NOT NULL,
    -- channel:{id} or bank:{bin}.
    payer text NOT NULL,
    channel_reference text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    late_fee bigint NOT NULL CHECK (late_fee >= 0),
    discount bigint NOT NULL CHECK (discount >= 0),
    fee bigint NOT NULL CHECK (fee >= 0 AND fee <= amount),
    fee_plan text NOT NULL,
    bill_status text NOT NULL,
    -- The day in Asia/Ho_Chi_Minh it was made: the collection report's day.
    business_date date NOT NULL,
    create_time timestamptz NOT NULL,
    UNIQUE (payer, channel_reference, bill_id)
);
CREATE INDEX payments_by_biller ON billing.payments (biller_id, create_time DESC, id DESC);
CREATE INDEX payments_by_bill ON billing.payments (bill_id);
CREATE INDEX payments_by_day ON billing.payments (biller_id, business_date);
