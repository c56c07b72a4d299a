-- Household businesses' tax codes: since 1 July 2025 (Circular 86/2024/TT-BTC) a household
-- business's tax code is its owner's 12-digit personal identification number (CCCD), beside the
-- 10-digit enterprise and 13-digit (dashed) branch forms. The column's CHECK of 0001 allowed only
-- the last two; this one restates all three. Version 3: version 2 is the idempotency tables.
-- A household's tax code is personal data, like owner_citizen_id: never logged, masked in
-- every response.
ALTER TABLE merchant.merchants
    DROP CONSTRAINT merchants_tax_code_check,
    ADD CONSTRAINT merchants_tax_code_check
        CHECK (tax_code ~ '^([0-9]{10}(-[0-9]{3})?|[0-9]{12})$');
