//! Onboarding, reading, updating and searching merchants.

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::{Paging, Violations, Work, cursor_i64, i64_cursor};
use paymesh_platform::migrate::RowLock;
use paymesh_proto::merchant::v1 as pb;
use sqlx::PgConnection;
use tonic::Request;

use super::MerchantService;
use super::input::{
    MerchantFields, PAGE_LIMITS, db, invalid_application, merchant_closed, not_found_merchant,
    require_reader, transition_error,
};
use crate::convert;
use crate::domain::{
    Action, Actor, Application, BillerCategory, Mcc, MerchantStatus, RawApplication, transition,
};
use crate::fold::search_key;
use crate::ids::MerchantId;
use crate::store::{self, AuditAction, MerchantFilter, MerchantRow, NewAuditEvent};

/// Longest name or market filter accepted.
const FILTER_CHARS_MAX: usize = 100;

/// The fields UpdateMerchant may change.
pub const UPDATABLE_FIELDS: [&str; 7] = [
    "trading_name",
    "phone",
    "address",
    "market_name",
    "stall_number",
    "settlement_bank_bin",
    "settlement_account_number",
];
/// The other fields of an application: fixed at onboarding.
const IDENTITY_FIELDS: [&str; 5] = [
    "business_name",
    "tax_code",
    "owner_citizen_id",
    "mcc",
    "biller_category",
];

/// The merchant as stored now, in the caller's transaction.
pub(super) async fn reread(
    tx: &mut PgConnection,
    id: MerchantId,
) -> Result<pb::Merchant, ApiError> {
    let row = store::merchant(tx, id, RowLock::None)
        .await?
        .ok_or_else(not_found_merchant)?;
    Ok(convert::merchant_to_pb(&row))
}

/// The merchant, locked for the rest of the transaction; CLOSED is final.
pub(super) async fn lock_open(
    tx: &mut PgConnection,
    id: MerchantId,
) -> Result<MerchantRow, ApiError> {
    let row = store::merchant(tx, id, RowLock::ForUpdate)
        .await?
        .ok_or_else(not_found_merchant)?;
    if row.status == MerchantStatus::Closed {
        return Err(merchant_closed());
    }
    Ok(row)
}

impl MerchantService {
    pub(super) async fn onboard(
        &self,
        request: Request<pb::OnboardMerchantRequest>,
    ) -> Result<pb::Merchant, ApiError> {
        let actor = principal(&request)?.to_string();
        let (app, fee_plan) = parse_onboarding(request.get_ref())?;
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let id = MerchantId::random();
                let profile = store::Profile::from_application(&app);
                store::insert_merchant(&mut work.tx, id, app.kind(), &profile, fee_plan.as_deref())
                    .await
                    .map_err(|e| match e {
                        store::InsertError::DuplicateTaxCode => ApiError::AlreadyExists {
                            resource: "a live merchant with this tax code",
                        },
                        store::InsertError::Other(e) => ApiError::Internal(e),
                    })?;
                let reason = match &fee_plan {
                    None => "onboarded".to_owned(),
                    Some(plan) => format!("onboarded, fee plan {plan}"),
                };
                let event = NewAuditEvent {
                    merchant: id,
                    actor: &actor,
                    action: AuditAction::Onboard,
                    from: None,
                    to: MerchantStatus::PendingReview,
                    reason: &reason,
                };
                store::append_audit(&mut work.tx, &event).await?;
                let merchant = reread(&mut work.tx, id).await?;
                tracing::info!(merchant_id = %id, kind = %app.kind(), %actor, "merchant onboarded");
                Ok((work, merchant))
            })
            .await
    }

    pub(super) async fn get(
        &self,
        request: Request<pb::GetMerchantRequest>,
    ) -> Result<pb::Merchant, ApiError> {
        let caller = principal(&request)?;
        let id = MerchantId::parse(&request.get_ref().merchant_id)
            .map_err(|e| ApiError::invalid("merchant_id", e.to_string()))?;
        require_reader(caller, id)?;
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let row = store::merchant(&mut conn, id, RowLock::None)
            .await?
            .ok_or_else(not_found_merchant)?;
        Ok(convert::merchant_to_pb(&row))
    }

    pub(super) async fn update(
        &self,
        request: Request<pb::UpdateMerchantRequest>,
    ) -> Result<pb::Merchant, ApiError> {
        let caller = principal(&request)?.clone();
        let (id, paths, new) = parse_update(&caller, request.get_ref())?;
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let row = lock_open(&mut work.tx, id).await?;
                let raw = masked(row.profile.to_raw(), &new, &paths);
                let app = Application::parse(row.kind, &raw).map_err(|e| invalid_application(&e))?;
                let profile = store::Profile::from_application(&app);
                let changed = profile.changed_fields(&row.profile);
                if changed.is_empty() {
                    return Ok((work, convert::merchant_to_pb(&row)));
                }
                let (status, action) = status_after_update(&row, &changed, &caller)?;
                store::update_profile(&mut work.tx, id, &profile, status).await?;
                let event = NewAuditEvent {
                    merchant: id,
                    actor: &caller.to_string(),
                    action,
                    from: Some(row.status),
                    to: status,
                    reason: &format!("changed: {}", changed.join(", ")),
                };
                store::append_audit(&mut work.tx, &event).await?;
                let merchant = reread(&mut work.tx, id).await?;
                tracing::info!(merchant_id = %id, fields = %changed.join(","), from = %row.status, to = %status, actor = %caller, "merchant updated");
                Ok((work, merchant))
            })
            .await
    }

    pub(super) async fn list(
        &self,
        request: Request<pb::ListMerchantsRequest>,
    ) -> Result<pb::ListMerchantsResponse, ApiError> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let filter = parse_filter(&mut v, req);
        let fingerprint = filter.fingerprint();
        let filters: Vec<&[u8]> = fingerprint.iter().map(|f| f.as_bytes()).collect();
        let paging = Paging::parse(
            &mut v,
            "merchant.merchants",
            &filters,
            req.page_size,
            &req.page_token,
            PAGE_LIMITS,
        );
        v.into_result()?;
        let after = paging.after().and_then(cursor_i64).unwrap_or(0);
        let rows = store::list_merchants(self.pool(), &filter, after, paging.fetch_limit()).await?;
        let (rows, next_page_token) = paging.finish(rows, |r| i64_cursor(r.seq));
        // Settlement pays merchants out: it alone reads the whole account number.
        let pays_out = matches!(principal(&request)?, Principal::Service(s) if s == "settlement");
        Ok(pb::ListMerchantsResponse {
            merchants: rows
                .iter()
                .map(|row| {
                    let mut m = convert::merchant_to_pb(row);
                    if pays_out {
                        m.settlement_account_number = row.profile.settlement_account_number.clone();
                    }
                    m
                })
                .collect(),
            next_page_token,
        })
    }

    /// `LookupVirtualAccounts`: one answer per number, in order; a number that cannot be a
    /// virtual account (as ListMerchants' filter reads it: trimmed, 1-19 digits) is nobody's.
    pub(super) async fn lookup_virtual_accounts(
        &self,
        request: Request<pb::LookupVirtualAccountsRequest>,
    ) -> Result<pb::LookupVirtualAccountsResponse, ApiError> {
        let asked = &request.get_ref().virtual_account_numbers;
        if asked.len() > VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX {
            let mut v = Violations::default();
            v.add(
                "virtual_account_numbers",
                format!("must be at most {VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX} numbers"),
            );
            v.into_result()?;
        }
        let mut numbers: Vec<String> = asked
            .iter()
            .filter_map(|n| virtual_account(n))
            .map(str::to_owned)
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let rows = store::by_virtual_accounts(self.pool(), &numbers).await?;
        let by_number: std::collections::HashMap<&str, &MerchantRow> = rows
            .iter()
            .filter_map(|r| {
                r.activation
                    .as_ref()
                    .map(|a| (a.virtual_account_number.as_str(), r))
            })
            .collect();
        Ok(pb::LookupVirtualAccountsResponse {
            holders: asked
                .iter()
                .map(|n| pb::VirtualAccountHolder {
                    virtual_account_number: n.clone(),
                    merchant: virtual_account(n)
                        .and_then(|k| by_number.get(k))
                        .map(|row| convert::merchant_to_pb(row)),
                })
                .collect(),
        })
    }
}

/// Numbers one LookupVirtualAccounts call may ask at most.
pub const VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX: usize = 256;

/// The number as a virtual account is looked up (trimmed), if it can be one: 1-19 digits.
fn virtual_account(text: &str) -> Option<&str> {
    let n = text.trim();
    (!n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

/// An onboarding request, parsed, with every violation at once: the application and the
/// merchant's own fee plan (canonical text), if it has one.
fn parse_onboarding(
    req: &pb::OnboardMerchantRequest,
) -> Result<(Application, Option<String>), ApiError> {
    let mut v = Violations::default();
    let kind = convert::kind_from_pb(req.kind);
    if kind.is_none() {
        v.add(
            "kind",
            "must be MERCHANT_KIND_VENDOR or MERCHANT_KIND_BILLER",
        );
    }
    let mut app = None;
    match (&req.application, kind) {
        (None, _) => v.add("application", "is required"),
        (Some(a), Some(kind)) => match Application::parse(kind, &convert::raw_application(a)) {
            Ok(parsed) => app = Some(parsed),
            Err(e) => v.application(&e),
        },
        (Some(_), None) => {}
    }
    let fee_plan = v.fee_plan("fee_plan", &req.fee_plan).map(|p| p.to_string());
    v.into_result()?;
    let app = app.ok_or_else(|| ApiError::invalid("application", "is required"))?;
    Ok((app, fee_plan))
}

/// An update: the merchant, the masked paths (each one of [`UPDATABLE_FIELDS`]) and the new
/// values. The caller is checked before anything is read: a merchant learns nothing about
/// others.
fn parse_update(
    caller: &Principal,
    req: &pb::UpdateMerchantRequest,
) -> Result<(MerchantId, Vec<String>, RawApplication), ApiError> {
    let mut v = Violations::default();
    let id = v.merchant_id("merchant_id", &req.merchant_id);
    let paths = update_paths(&mut v, req);
    if req.application.is_none() {
        v.add(
            "application",
            "is required: the new values of the masked fields",
        );
    }
    if let Some(id) = id
        && !caller.is_operator()
        && !paymesh_platform::kit::is_owner(caller, &id.to_string())
    {
        return Err(ApiError::PermissionDenied(format!(
            "{caller} may not change merchant {id}"
        )));
    }
    v.into_result()?;
    match (id, req.application.as_ref()) {
        (Some(id), Some(new)) => Ok((id, paths, convert::raw_application(new))),
        _ => Err(ApiError::invalid("merchant_id", "required")),
    }
}

/// The update mask's paths, each checked.
fn update_paths(v: &mut Violations, req: &pb::UpdateMerchantRequest) -> Vec<String> {
    let paths: Vec<String> = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    if paths.len() > UPDATABLE_FIELDS.len() + IDENTITY_FIELDS.len() {
        v.add(
            "update_mask",
            "names more paths than MerchantApplication has fields",
        );
        return Vec::new();
    }
    if paths.is_empty() {
        v.add(
            "update_mask",
            format!(
                "is required: name the fields to change ({})",
                UPDATABLE_FIELDS.join(", ")
            ),
        );
    }
    for path in &paths {
        if IDENTITY_FIELDS.contains(&path.as_str()) {
            v.add(
                "update_mask",
                format!("{path} cannot be changed: it is fixed at onboarding"),
            );
        } else if !UPDATABLE_FIELDS.contains(&path.as_str()) {
            v.add(
                "update_mask",
                format!(
                    "{:?} is not a field of MerchantApplication",
                    path.chars().take(64).collect::<String>()
                ),
            );
        }
    }
    paths
}

/// `current` with the masked fields taken from `new`.
fn masked(mut current: RawApplication, new: &RawApplication, paths: &[String]) -> RawApplication {
    for path in paths {
        let (to, from) = match path.as_str() {
            "trading_name" => (&mut current.trading_name, &new.trading_name),
            "phone" => (&mut current.phone, &new.phone),
            "address" => (&mut current.address, &new.address),
            "market_name" => (&mut current.market_name, &new.market_name),
            "stall_number" => (&mut current.stall_number, &new.stall_number),
            "settlement_bank_bin" => (&mut current.settlement_bank_bin, &new.settlement_bank_bin),
            "settlement_account_number" => (
                &mut current.settlement_account_number,
                &new.settlement_account_number,
            ),
            _ => continue,
        };
        to.clone_from(from);
    }
    current
}

/// A changed settlement account sends an active or suspended merchant back to review.
fn status_after_update(
    row: &MerchantRow,
    changed: &[&str],
    caller: &Principal,
) -> Result<(MerchantStatus, AuditAction), ApiError> {
    let settlement_changed = changed
        .iter()
        .any(|f| matches!(*f, "settlement_bank_bin" | "settlement_account_number"));
    if !settlement_changed
        || !matches!(
            row.status,
            MerchantStatus::Active | MerchantStatus::Suspended
        )
    {
        return Ok((row.status, AuditAction::Update));
    }
    let actor = if caller.is_operator() {
        Actor::Operator
    } else {
        Actor::TheMerchant
    };
    let to = transition(row.status, Action::ResubmitForReview, actor).map_err(transition_error)?;
    Ok((to, AuditAction::ResubmitForReview))
}

/// The search filters, each checked.
fn parse_filter(v: &mut Violations, req: &pb::ListMerchantsRequest) -> MerchantFilter {
    let mut filter = MerchantFilter::default();
    if req.status != 0 {
        filter.status = convert::status_from_pb(req.status);
        if filter.status.is_none() {
            v.add("status", "is not a MerchantStatus");
        }
    }
    if req.kind != 0 {
        filter.kind = convert::kind_from_pb(req.kind);
        if filter.kind.is_none() {
            v.add("kind", "is not a MerchantKind");
        }
    }
    let mut text_filter = |field: &str, text: &str| -> Option<String> {
        if text.chars().count() > FILTER_CHARS_MAX {
            v.add(
                field,
                format!("must be at most {FILTER_CHARS_MAX} characters"),
            );
            return None;
        }
        Some(search_key(text)).filter(|k| !k.is_empty())
    };
    filter.market = text_filter("market_name", &req.market_name);
    filter.name_contains = text_filter("name_contains", &req.name_contains);
    if req.biller_category != 0 {
        match BillerCategory::parse(&convert::category_text(req.biller_category)) {
            Ok(c) => filter.biller_category = Some(c.as_str()),
            Err(_) => v.add("biller_category", "is not a BillerCategory"),
        }
    }
    if !req.virtual_account_number.trim().is_empty() {
        match virtual_account(&req.virtual_account_number) {
            Some(va) => filter.virtual_account_number = Some(va.to_owned()),
            None => v.add("virtual_account_number", "must be 1-19 digits"),
        }
    }
    if !req.mcc.trim().is_empty() {
        filter.mcc = v
            .parse("mcc", Mcc::parse(&req.mcc))
            .map(|m| m.as_str().to_owned());
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_application_field_is_updatable_or_fixed() {
        let raw = RawApplication::default();
        // RawApplication's fields, by name (the Debug output lists them).
        let debug = format!("{raw:?}");
        let mut named = 0;
        for field in UPDATABLE_FIELDS.iter().chain(IDENTITY_FIELDS.iter()) {
            assert!(debug.contains(&format!("{field}:")), "{field}");
            named += 1;
        }
        assert_eq!(named, 12, "RawApplication has 12 fields");
    }

    #[test]
    fn the_mask_takes_only_the_named_fields() {
        let current = RawApplication {
            phone: "0901234567".into(),
            address: "old".into(),
            ..RawApplication::default()
        };
        let new = RawApplication {
            phone: "0912345678".into(),
            address: "new".into(),
            ..RawApplication::default()
        };
        let out = masked(current, &new, &["address".into()]);
        assert_eq!(out.address, "new");
        assert_eq!(out.phone, "0901234567");
    }
}
