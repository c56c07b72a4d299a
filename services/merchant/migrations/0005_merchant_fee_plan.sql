-- The merchant's own fee plan: what paymesh keeps of each of its payments, as the text of
-- `paymesh_money::fees::FeePlan` in its canonical form (`none`, `flat:2000`,
-- `percent:0.6,min:1000,cap:50000`), parsed by the service before it gets here. NULL: the
-- merchant has none of its own and the payment service's default (`payment.fee_plan`) applies.
-- Set by an operator (OnboardMerchant, SetMerchantFeePlan); the payment service records on each
-- payment the plan it charged under.
ALTER TABLE merchant.merchants
    ADD COLUMN fee_plan text
        CHECK (fee_plan ~ '^(none|flat:[0-9]{1,15}|percent:[0-9]{1,3}(\.[0-9]{1,4})?(,min:[0-9]{1,15})?(,cap:[0-9]{1,15})?)$');

-- A change of plan is audited as SET_FEE_PLAN (the reason names the old and new plans).
ALTER TABLE merchant.audit_events
    DROP CONSTRAINT audit_events_action_check,
    ADD CONSTRAINT audit_events_action_check CHECK (action IN (
        'ONBOARD', 'APPROVE', 'REJECT', 'SUSPEND', 'REINSTATE', 'CLOSE',
        'RESUBMIT_FOR_REVIEW', 'UPDATE', 'ISSUE_CREDENTIAL', 'REVOKE_CREDENTIAL',
        'SET_FEE_PLAN'));
