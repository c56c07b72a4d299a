-- The merchant's version (its etag, AIP-154) and the epoch of its credential tokens.
--
-- `version` goes up by one on every change of the row, whatever the statement (a trigger, so
-- no UPDATE can forget it): ApproveMerchant and RejectMerchant carry the etag the operator
-- reviewed, and a merchant that changed since is refused (ABORTED, ETAG_MISMATCH).
--
-- `token_epoch` goes up when the merchant is suspended: the tokens its credentials were
-- exchanged for carry `cid` = `<credential id>.<epoch>`, and suspending lists every credential
-- at the old epoch on the revocation list, so the live tokens stop at once while tokens
-- exchanged after reinstatement (new epoch) are not listed. `tokens_cut_at` is when that last
-- happened: the revocation list is rewritten from it for a token lifetime and a margin.
ALTER TABLE merchant.merchants
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN token_epoch integer NOT NULL DEFAULT 0 CHECK (token_epoch >= 0),
    ADD COLUMN tokens_cut_at timestamptz;

CREATE FUNCTION merchant.merchants_next_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER merchants_version
    BEFORE UPDATE ON merchant.merchants
    FOR EACH ROW EXECUTE FUNCTION merchant.merchants_next_version();
