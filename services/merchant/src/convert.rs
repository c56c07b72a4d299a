//! Between the wire (`paymesh.merchant.v1`) and the domain and storage types.

use paymesh_proto::merchant::v1 as pb;

use crate::domain::{
    BankAccountNumber, BillerCategory, CitizenId, MerchantKind, MerchantStatus, PhoneNumber,
    RawApplication, TaxCode,
};
use crate::store::{AuditAction, AuditRow, CredentialRow, MerchantRow};

pub fn kind_from_pb(value: i32) -> Option<MerchantKind> {
    match pb::MerchantKind::try_from(value).ok()? {
        pb::MerchantKind::Vendor => Some(MerchantKind::Vendor),
        pb::MerchantKind::Biller => Some(MerchantKind::Biller),
        pb::MerchantKind::Unspecified => None,
    }
}

pub fn kind_to_pb(kind: MerchantKind) -> pb::MerchantKind {
    match kind {
        MerchantKind::Vendor => pb::MerchantKind::Vendor,
        MerchantKind::Biller => pb::MerchantKind::Biller,
    }
}

pub fn status_from_pb(value: i32) -> Option<MerchantStatus> {
    match pb::MerchantStatus::try_from(value).ok()? {
        pb::MerchantStatus::PendingReview => Some(MerchantStatus::PendingReview),
        pb::MerchantStatus::Active => Some(MerchantStatus::Active),
        pb::MerchantStatus::Rejected => Some(MerchantStatus::Rejected),
        pb::MerchantStatus::Suspended => Some(MerchantStatus::Suspended),
        pb::MerchantStatus::Closed => Some(MerchantStatus::Closed),
        pb::MerchantStatus::Unspecified => None,
    }
}

pub fn status_to_pb(status: MerchantStatus) -> pb::MerchantStatus {
    match status {
        MerchantStatus::PendingReview => pb::MerchantStatus::PendingReview,
        MerchantStatus::Active => pb::MerchantStatus::Active,
        MerchantStatus::Rejected => pb::MerchantStatus::Rejected,
        MerchantStatus::Suspended => pb::MerchantStatus::Suspended,
        MerchantStatus::Closed => pb::MerchantStatus::Closed,
    }
}

/// The wire's category as the domain spells it: empty for UNSPECIFIED, and for a number the
/// enum does not know a text the domain's parser refuses (so it is reported, not dropped).
pub fn category_text(value: i32) -> String {
    let known = match pb::BillerCategory::try_from(value) {
        Ok(pb::BillerCategory::Unspecified) => return String::new(),
        Ok(pb::BillerCategory::Electricity) => BillerCategory::Electricity,
        Ok(pb::BillerCategory::Water) => BillerCategory::Water,
        Ok(pb::BillerCategory::Tuition) => BillerCategory::Tuition,
        Ok(pb::BillerCategory::HospitalFee) => BillerCategory::HospitalFee,
        Ok(pb::BillerCategory::AdministrativeFee) => BillerCategory::AdministrativeFee,
        Err(_) => return format!("unknown category {value}"),
    };
    known.as_str().to_owned()
}

pub fn category_to_pb(stored: Option<&str>) -> pb::BillerCategory {
    match stored.map(BillerCategory::parse) {
        Some(Ok(BillerCategory::Electricity)) => pb::BillerCategory::Electricity,
        Some(Ok(BillerCategory::Water)) => pb::BillerCategory::Water,
        Some(Ok(BillerCategory::Tuition)) => pb::BillerCategory::Tuition,
        Some(Ok(BillerCategory::HospitalFee)) => pb::BillerCategory::HospitalFee,
        Some(Ok(BillerCategory::AdministrativeFee)) => pb::BillerCategory::AdministrativeFee,
        _ => pb::BillerCategory::Unspecified,
    }
}

/// The wire application as the domain's raw application.
pub fn raw_application(a: &pb::MerchantApplication) -> RawApplication {
    RawApplication {
        business_name: a.business_name.clone(),
        trading_name: a.trading_name.clone(),
        tax_code: a.tax_code.clone(),
        owner_citizen_id: a.owner_citizen_id.clone(),
        phone: a.phone.clone(),
        address: a.address.clone(),
        market_name: a.market_name.clone(),
        stall_number: a.stall_number.clone(),
        mcc: a.mcc.clone(),
        settlement_bank_bin: a.settlement_bank_bin.clone(),
        settlement_account_number: a.settlement_account_number.clone(),
        biller_category: category_text(a.biller_category),
    }
}

pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A stored personal value as the masked text of its domain type. A value that no longer
/// parses (it was stored under other rules) is masked whole.
fn masked<T: std::fmt::Display, E>(stored: &str, parse: impl Fn(&str) -> Result<T, E>) -> String {
    match parse(stored) {
        Ok(v) => v.to_string(),
        Err(_) => "*".repeat(stored.chars().count().min(4)),
    }
}

pub fn merchant_to_pb(m: &MerchantRow) -> pb::Merchant {
    let p = &m.profile;
    let a = m.activation.as_ref();
    pb::Merchant {
        id: m.id.to_string(),
        kind: kind_to_pb(m.kind) as i32,
        status: status_to_pb(m.status) as i32,
        business_name: p.business_name.clone(),
        trading_name: p.trading_name.clone().unwrap_or_default(),
        // Whole for an enterprise or branch; a household business's (a citizen id) masked.
        tax_code: masked(&p.tax_code, TaxCode::parse),
        owner_citizen_id_masked: p
            .owner_citizen_id
            .as_deref()
            .map(|c| masked(c, CitizenId::parse))
            .unwrap_or_default(),
        phone_masked: masked(&p.phone, PhoneNumber::parse),
        address: p.address.clone(),
        market_name: p.market_name.clone().unwrap_or_default(),
        stall_number: p.stall_number.clone().unwrap_or_default(),
        mcc: p.mcc.clone(),
        biller_category: category_to_pb(p.biller_category.as_deref()) as i32,
        settlement_bank_bin: p.settlement_bank_bin.clone(),
        settlement_account_number_masked: masked(
            &p.settlement_account_number,
            BankAccountNumber::parse,
        ),
        virtual_account_number: a
            .map(|a| a.virtual_account_number.clone())
            .unwrap_or_default(),
        collection_bank_bin: a.map(|a| a.collection_bank_bin.clone()).unwrap_or_default(),
        static_qr_payload: a.map(|a| a.static_qr_payload.clone()).unwrap_or_default(),
        payable_account_id: a
            .map(|a| a.payable_account_id.as_bytes().to_vec())
            .unwrap_or_default(),
        receivable_account_id: a
            .map(|a| a.receivable_account_id.as_bytes().to_vec())
            .unwrap_or_default(),
        create_time: Some(timestamp(m.created_us)),
        update_time: Some(timestamp(m.updated_us)),
        activate_time: a.map(|a| timestamp(a.activated_us)),
        etag: m.etag(),
        fee_plan: m.fee_plan.clone().unwrap_or_default(),
        // Whole only for the settlement service (see the RPC).
        settlement_account_number: String::new(),
    }
}

pub fn audit_action_to_pb(a: AuditAction) -> pb::AuditAction {
    match a {
        AuditAction::Onboard => pb::AuditAction::Onboard,
        AuditAction::Approve => pb::AuditAction::Approve,
        AuditAction::Reject => pb::AuditAction::Reject,
        AuditAction::Suspend => pb::AuditAction::Suspend,
        AuditAction::Reinstate => pb::AuditAction::Reinstate,
        AuditAction::Close => pb::AuditAction::Close,
        AuditAction::ResubmitForReview => pb::AuditAction::ResubmitForReview,
        AuditAction::Update => pb::AuditAction::Update,
        AuditAction::IssueCredential => pb::AuditAction::IssueCredential,
        AuditAction::RevokeCredential => pb::AuditAction::RevokeCredential,
        AuditAction::SetFeePlan => pb::AuditAction::SetFeePlan,
    }
}

pub fn audit_event_to_pb(e: &AuditRow) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id,
        merchant_id: e.merchant.to_string(),
        actor: e.actor.clone(),
        action: audit_action_to_pb(e.action) as i32,
        from_status: e.from.map(|s| status_to_pb(s) as i32).unwrap_or_default(),
        to_status: status_to_pb(e.to) as i32,
        reason: e.reason.clone(),
        create_time: Some(timestamp(e.created_us)),
    }
}

pub fn credential_to_pb(c: &CredentialRow) -> pb::Credential {
    pb::Credential {
        id: crate::credential::id_text(c.id),
        merchant_id: c.merchant.to_string(),
        display_name: c.display_name.clone(),
        create_time: Some(timestamp(c.created_us)),
        revoke_time: c.revoked_us.map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for kind in MerchantKind::ALL {
            assert_eq!(kind_from_pb(kind_to_pb(kind) as i32), Some(kind));
        }
        for status in MerchantStatus::ALL {
            assert_eq!(status_from_pb(status_to_pb(status) as i32), Some(status));
        }
        assert_eq!(kind_from_pb(0), None);
        assert_eq!(kind_from_pb(99), None);
        assert_eq!(status_from_pb(0), None);
        for category in BillerCategory::ALL {
            let text = category.as_str();
            let wire = category_to_pb(Some(text)) as i32;
            assert_eq!(category_text(wire), text);
        }
        assert_eq!(category_text(0), "");
        assert!(BillerCategory::parse(&category_text(42)).is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp(1_500_000),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
