//! The gRPC surface: `paymesh.merchant.v1.MerchantService`.
//!
//! Each mutating RPC claims its idempotency key in the transaction that makes its effect
//! (`pg::claim` … `pg::finish`, then commit), locks the merchant's row (`FOR UPDATE`) before
//! deciding anything from its status, and appends its audit event in the same transaction.
//! Bad input is refused before the transaction starts, with every violation at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paymesh_platform::auth::{Minter, Principal, principal};
use paymesh_platform::config::Config;
use paymesh_platform::idempotency::{IdempotencyContext, KEY_METADATA, KeyRule, pg};
use paymesh_platform::{ApiError, FieldViolation};
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_server::{self, MerchantServiceServer};
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::credential::{self, Presented};
use crate::domain::{
    Action, Actor, Application, BankBin, Mcc, MerchantStatus, TradingName, TransitionError,
    transition,
};
use crate::fold::search_key;
use crate::ids::{MerchantId, virtual_account_number};
use crate::ledger::Ledger;
use crate::paging::{self, Listing};
use crate::static_qr::{self, StaticQrInput};
use crate::store::{self, AuditAction, MerchantFilter, NewActivation, NewAuditEvent, SCHEMA};

const SERVICE_PATH: &str = "/paymesh.merchant.v1.MerchantService/";
/// Longest reason (for the audit log) accepted.
pub const REASON_CHARS_MAX: usize = 500;
/// Longest name or market filter accepted.
const FILTER_CHARS_MAX: usize = 100;
/// Valid (unrevoked) credentials a merchant may have at once.
pub const CREDENTIALS_PER_MERCHANT_MAX: i64 = 10;
/// PNG pixels per module when the request does not say.
const PNG_MODULE_PX_DEFAULT: u32 = 8;
const PNG_MODULE_PX_MAX: u32 = 32;

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

/// What the service needs besides its database.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ledger_addr: String,
    pub collection_bank_bin: String,
    pub virtual_account_prefix: String,
    pub credential_token_ttl: Duration,
    pub idempotency_retention: Duration,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            ledger_addr: cfg.merchant.ledger_addr.clone(),
            collection_bank_bin: cfg.merchant.collection_bank_bin.clone(),
            virtual_account_prefix: cfg.merchant.virtual_account_prefix.clone(),
            credential_token_ttl: cfg.merchant.credential_token_ttl,
            idempotency_retention: cfg.idempotency.retention,
        }
    }
}

#[derive(Clone)]
pub struct MerchantService {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    ledger: Ledger,
    minter: Minter,
    collection_bank: BankBin,
    virtual_account_prefix: String,
    credential_token_ttl: Duration,
    retention: Duration,
    /// Where revoked credentials are listed for the auth layers of every service; `None`
    /// leaves credential revocation to the exchange alone (tokens then live until expiry).
    revocations: Option<redis::aio::ConnectionManager>,
}

/// How often the revocation list is rewritten from the database (it heals a Redis flush).
const REVOCATION_REPUBLISH: Duration = Duration::from_secs(5);
/// Added to the token lifetime when listing a revoked credential (clock skew, leeway).
const REVOCATION_MARGIN: Duration = Duration::from_secs(120);

impl MerchantService {
    /// Checks the settings, runs the migrations, and connects (lazily) to the ledger. `minter`
    /// signs the service's tokens for the ledger and the tokens credentials are exchanged for.
    ///
    /// `revocations`: the Redis the auth layers read the revoked-credential list from (see
    /// `paymesh_platform::auth`). With it, revoking a credential also stops the tokens it was
    /// exchanged for at once; the list is rewritten from the database every few seconds, so a
    /// Redis flush or restart heals by itself.
    pub async fn start(
        pool: PgPool,
        settings: &Settings,
        minter: Minter,
        revocations: Option<redis::aio::ConnectionManager>,
    ) -> anyhow::Result<MerchantService> {
        let collection_bank = BankBin::parse(&settings.collection_bank_bin)
            .map_err(|e| anyhow::anyhow!("config key `merchant.collection_bank_bin`: {e}"))?;
        // Checked here too, not only by the config: a bad prefix must stop start-up, not the
        // first approval.
        virtual_account_number(&settings.virtual_account_prefix, 1)
            .map_err(|e| anyhow::anyhow!("config key `merchant.virtual_account_prefix`: {e}"))?;
        let applied = store::migrate(&pool).await?;
        if applied > 0 {
            tracing::info!(applied, "merchant migrations applied");
        }
        let ledger = Ledger::new(&settings.ledger_addr, minter.clone())?;
        let service = MerchantService {
            inner: Arc::new(Inner {
                pool,
                ledger,
                minter,
                collection_bank,
                virtual_account_prefix: settings.virtual_account_prefix.clone(),
                credential_token_ttl: settings.credential_token_ttl,
                retention: settings.idempotency_retention,
                revocations,
            }),
        };
        if let Some(conn) = service.inner.revocations.clone() {
            let pool = service.inner.pool.clone();
            let window = settings.credential_token_ttl + REVOCATION_MARGIN;
            let weak = Arc::downgrade(&service.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REVOCATION_REPUBLISH);
                while weak.strong_count() > 0 {
                    tick.tick().await;
                    match store::recently_revoked_credentials(&pool, window).await {
                        Ok(ids) => {
                            let mut conn = conn.clone();
                            for id in ids {
                                if let Err(e) = paymesh_platform::auth::mark_credential_revoked(
                                    &mut conn,
                                    &credential::id_text(id),
                                    window,
                                )
                                .await
                                {
                                    tracing::warn!(error = %e, "cannot rewrite the credential revocation list");
                                    break;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(
                            error = format!("{e:#}"),
                            "cannot read revoked credentials"
                        ),
                    }
                }
            });
        }
        Ok(service)
    }

    /// Lists revoked credentials for the auth layers, before the revocation commits: if Redis
    /// cannot take it, the RPC fails and nothing is revoked.
    async fn publish_revocations(&self, ids: &[uuid::Uuid]) -> Result<(), ApiError> {
        let Some(conn) = &self.inner.revocations else {
            return Ok(());
        };
        let mut conn = conn.clone();
        let ttl = self.inner.credential_token_ttl + REVOCATION_MARGIN;
        for id in ids {
            paymesh_platform::auth::mark_credential_revoked(
                &mut conn,
                &credential::id_text(*id),
                ttl,
            )
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("cannot list the revoked credential: {e}"))
            })?;
        }
        Ok(())
    }

    pub fn into_server(self, message_bytes_max: usize) -> MerchantServiceServer<MerchantService> {
        MerchantServiceServer::new(self)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Every mutating RPC, each needing an idempotency key.
    pub fn idempotent_rpcs() -> Vec<(String, KeyRule)> {
        [
            "OnboardMerchant",
            "UpdateMerchant",
            "ApproveMerchant",
            "RejectMerchant",
            "SuspendMerchant",
            "ReinstateMerchant",
            "CloseMerchant",
            "IssueCredential",
            "RevokeCredential",
        ]
        .into_iter()
        .map(|m| (format!("{SERVICE_PATH}{m}"), KeyRule::Required))
        .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Who may call what.

fn require_operator<T>(req: &Request<T>) -> Result<Principal, ApiError> {
    let p = principal(req)?;
    if *p == Principal::Operator {
        Ok(p.clone())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "{p} may not call this RPC: operators only"
        )))
    }
}

/// Whether `p` is the merchant `id` itself.
fn is_self(p: &Principal, id: MerchantId) -> bool {
    match p {
        Principal::Merchant(pid) | Principal::Biller(pid) => *pid == id.to_string(),
        _ => false,
    }
}

/// Operators, paymesh services, and the merchant itself may read a merchant.
fn require_reader(p: &Principal, id: MerchantId) -> Result<(), ApiError> {
    if p.is_internal() || is_self(p, id) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "{p} may not read merchant {id}"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Input.

#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    fn merchant_id(&mut self, field: &str, text: &str) -> Option<MerchantId> {
        match MerchantId::parse(text) {
            Ok(id) => Some(id),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    fn reason(&mut self, text: &str) -> String {
        let reason = text.trim();
        if reason.is_empty() {
            self.add("reason", "is required: say why, for the audit log");
        } else if reason.chars().count() > REASON_CHARS_MAX {
            self.add(
                "reason",
                format!("must be at most {REASON_CHARS_MAX} characters"),
            );
        } else if reason.chars().any(char::is_control) {
            self.add(
                "reason",
                "must not contain control characters or line breaks",
            );
        }
        reason.to_owned()
    }

    fn page_size(&mut self, requested: i32) -> i64 {
        paging::page_size(requested).unwrap_or_else(|why| {
            self.add("page_size", why);
            paging::PAGE_SIZE_DEFAULT
        })
    }

    fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

/// The application's violations as request fields (`application.tax_code`).
fn application_violations(v: &mut Violations, e: &crate::domain::InvalidApplication) {
    for violation in e.violations() {
        v.add(
            format!("application.{}", violation.field()),
            violation.message(),
        );
    }
}

fn transition_error(e: TransitionError) -> ApiError {
    match e {
        TransitionError::OperatorOnly { .. } => ApiError::PermissionDenied(e.to_string()),
        TransitionError::Closed | TransitionError::NotFrom { .. } => ApiError::FailedPrecondition {
            reason: "INVALID_STATUS_TRANSITION",
            message: e.to_string(),
        },
    }
}

fn merchant_closed() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "MERCHANT_CLOSED",
        message: "the merchant is CLOSED, which is final".into(),
    }
}

fn not_found_merchant() -> ApiError {
    ApiError::NotFound {
        resource: "merchant",
    }
}

fn db(e: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::from(e))
}

// ---------------------------------------------------------------------------------------------
// Idempotency: the key is claimed in the effect's transaction.

enum Begun<M> {
    /// Make the effect in this transaction, then [`MerchantService::finish`].
    Fresh(Transaction<'static, Postgres>, IdempotencyContext),
    /// The key was used for this request before: its stored response.
    Replay(M),
}

impl MerchantService {
    async fn begin<M: Message + Default, T>(&self, req: &Request<T>) -> Result<Begun<M>, ApiError> {
        let ctx = req
            .extensions()
            .get::<IdempotencyContext>()
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(
                    KEY_METADATA,
                    "required on this RPC: send idempotency-key metadata",
                )
            })?;
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        match pg::claim(&mut tx, SCHEMA, &ctx, self.inner.retention).await? {
            pg::Claim::New => Ok(Begun::Fresh(tx, ctx)),
            pg::Claim::Replay(bytes) => {
                M::decode(bytes.as_slice()).map(Begun::Replay).map_err(|e| {
                    ApiError::Internal(anyhow::anyhow!("stored idempotent response: {e}"))
                })
            }
        }
    }

    /// Stores `stored` as the key's response and commits the effect with it.
    async fn finish<M: Message>(
        &self,
        mut tx: Transaction<'static, Postgres>,
        ctx: &IdempotencyContext,
        stored: &M,
    ) -> Result<(), ApiError> {
        pg::finish(&mut tx, SCHEMA, ctx, &stored.encode_to_vec()).await?;
        tx.commit().await.map_err(db)
    }

    async fn reread(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: MerchantId,
    ) -> Result<pb::Merchant, ApiError> {
        let row = store::merchant(tx, id, false)
            .await?
            .ok_or_else(not_found_merchant)?;
        Ok(convert::merchant_to_pb(&row))
    }
}

/// What the five status RPCs carry.
trait StatusChange {
    fn merchant_id(&self) -> &str;
    fn reason(&self) -> &str;
}

macro_rules! status_change {
    ($($t:ty),*) => {$(
        impl StatusChange for $t {
            fn merchant_id(&self) -> &str {
                &self.merchant_id
            }
            fn reason(&self) -> &str {
                &self.reason
            }
        }
    )*};
}
status_change!(
    pb::ApproveMerchantRequest,
    pb::RejectMerchantRequest,
    pb::SuspendMerchantRequest,
    pb::ReinstateMerchantRequest,
    pb::CloseMerchantRequest
);

fn audit_action(action: Action) -> AuditAction {
    match action {
        Action::Approve => AuditAction::Approve,
        Action::Reject => AuditAction::Reject,
        Action::Suspend => AuditAction::Suspend,
        Action::Reinstate => AuditAction::Reinstate,
        Action::Close => AuditAction::Close,
        Action::ResubmitForReview => AuditAction::ResubmitForReview,
    }
}

impl MerchantService {
    async fn change_status<T: StatusChange>(
        &self,
        request: Request<T>,
        action: Action,
    ) -> Result<pb::Merchant, ApiError> {
        let actor = require_operator(&request)?;
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", request.get_ref().merchant_id());
        let reason = v.reason(request.get_ref().reason());
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        let (mut tx, ctx) = match self.begin(&request).await? {
            Begun::Replay(m) => return Ok(m),
            Begun::Fresh(tx, ctx) => (tx, ctx),
        };
        let row = store::merchant(&mut tx, id, true)
            .await?
            .ok_or_else(not_found_merchant)?;
        let to = transition(row.status, action, Actor::Operator).map_err(transition_error)?;
        match action {
            Action::Approve => self.activate(&mut tx, &row, to).await?,
            Action::Close => {
                let revoked =
                    store::revoke_all_credentials(&mut tx, id, &actor.to_string()).await?;
                self.publish_revocations(&revoked).await?;
                if !revoked.is_empty() {
                    tracing::info!(merchant_id = %id, revoked = revoked.len(), "credentials revoked on close");
                }
                store::set_status(&mut tx, id, to).await?;
            }
            _ => store::set_status(&mut tx, id, to).await?,
        }
        store::append_audit(
            &mut tx,
            &NewAuditEvent {
                merchant: id,
                actor: &actor.to_string(),
                action: audit_action(action),
                from: Some(row.status),
                to,
                reason: &reason,
            },
        )
        .await?;
        let merchant = self.reread(&mut tx, id).await?;
        self.finish(tx, &ctx, &merchant).await?;
        tracing::info!(merchant_id = %id, from = %row.status, to = %to, %actor, "merchant status changed");
        Ok(merchant)
    }

    /// Approval: opens the ledger accounts (or finds them, on a retry or a second approval),
    /// and on the first approval assigns the virtual account and issues the static QR.
    async fn activate(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        row: &store::MerchantRow,
        to: MerchantStatus,
    ) -> Result<(), ApiError> {
        // Called with the merchant's row locked: a concurrent approval waits for this one.
        let opened = self.inner.ledger.open_accounts(row.id).await?;
        if row.activation.is_some() {
            store::set_status(tx, row.id, to).await?;
            return Ok(());
        }
        let sequence = store::next_virtual_account_sequence(tx).await?;
        let va = virtual_account_number(&self.inner.virtual_account_prefix, sequence)?;
        let bin = self.inner.collection_bank.as_str();
        let payload = static_qr::payload(&StaticQrInput {
            collection_bank_bin: bin,
            virtual_account_number: &va,
            mcc: &row.profile.mcc,
            business_name: &row.profile.business_name,
            trading_name: row.profile.trading_name.as_deref(),
            address: &row.profile.address,
        })
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("building the static VietQR: {e}")))?;
        store::activate(
            tx,
            row.id,
            to,
            &NewActivation {
                virtual_account_number: va,
                collection_bank_bin: bin.to_owned(),
                static_qr_payload: payload,
                payable_account_id: opened.payable.to_uuid(),
                receivable_account_id: opened.receivable.to_uuid(),
            },
        )
        .await?;
        Ok(())
    }

    async fn update(
        &self,
        request: Request<pb::UpdateMerchantRequest>,
    ) -> Result<pb::Merchant, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let mut paths: Vec<String> = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        if paths.len() > UPDATABLE_FIELDS.len() + IDENTITY_FIELDS.len() {
            v.add(
                "update_mask",
                "names more paths than MerchantApplication has fields",
            );
            paths.clear();
        } else if paths.is_empty() {
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
        if req.application.is_none() {
            v.add(
                "application",
                "is required: the new values of the masked fields",
            );
        }
        // The caller is checked before anything is read: a merchant learns nothing about others.
        if let Some(id) = id
            && caller != Principal::Operator
            && !is_self(&caller, id)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not change merchant {id}"
            )));
        }
        v.into_result()?;
        let (Some(id), Some(new)) = (id, req.application.as_ref()) else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        let new = convert::raw_application(new);
        let (mut tx, ctx) = match self.begin(&request).await? {
            Begun::Replay(m) => return Ok(m),
            Begun::Fresh(tx, ctx) => (tx, ctx),
        };
        let row = store::merchant(&mut tx, id, true)
            .await?
            .ok_or_else(not_found_merchant)?;
        if row.status == MerchantStatus::Closed {
            return Err(merchant_closed());
        }
        let mut raw = row.profile.to_raw();
        for path in &paths {
            match path.as_str() {
                "trading_name" => raw.trading_name.clone_from(&new.trading_name),
                "phone" => raw.phone.clone_from(&new.phone),
                "address" => raw.address.clone_from(&new.address),
                "market_name" => raw.market_name.clone_from(&new.market_name),
                "stall_number" => raw.stall_number.clone_from(&new.stall_number),
                "settlement_bank_bin" => {
                    raw.settlement_bank_bin.clone_from(&new.settlement_bank_bin);
                }
                "settlement_account_number" => raw
                    .settlement_account_number
                    .clone_from(&new.settlement_account_number),
                _ => {}
            }
        }
        let app = Application::parse(row.kind, &raw).map_err(|e| {
            let mut v = Violations::default();
            application_violations(&mut v, &e);
            ApiError::InvalidArgument(v.0)
        })?;
        let profile = store::Profile::from_application(&app);
        let changed = profile.changed_fields(&row.profile);
        if changed.is_empty() {
            let merchant = convert::merchant_to_pb(&row);
            self.finish(tx, &ctx, &merchant).await?;
            return Ok(merchant);
        }
        let settlement_changed = changed
            .iter()
            .any(|f| matches!(*f, "settlement_bank_bin" | "settlement_account_number"));
        let actor = if caller == Principal::Operator {
            Actor::Operator
        } else {
            Actor::TheMerchant
        };
        let (status, action) = if settlement_changed
            && matches!(
                row.status,
                MerchantStatus::Active | MerchantStatus::Suspended
            ) {
            let to = transition(row.status, Action::ResubmitForReview, actor)
                .map_err(transition_error)?;
            (to, AuditAction::ResubmitForReview)
        } else {
            (row.status, AuditAction::Update)
        };
        store::update_profile(&mut tx, id, &profile, status).await?;
        store::append_audit(
            &mut tx,
            &NewAuditEvent {
                merchant: id,
                actor: &caller.to_string(),
                action,
                from: Some(row.status),
                to: status,
                reason: &format!("changed: {}", changed.join(", ")),
            },
        )
        .await?;
        let merchant = self.reread(&mut tx, id).await?;
        self.finish(tx, &ctx, &merchant).await?;
        tracing::info!(merchant_id = %id, fields = %changed.join(","), from = %row.status, to = %status, actor = %caller, "merchant updated");
        Ok(merchant)
    }
}

fn now_plus(ttl: Duration) -> prost_types::Timestamp {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ttl);
    prost_types::Timestamp {
        seconds: i64::try_from(at.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(at.subsec_nanos()).unwrap_or(0),
    }
}

/// The `pmk_…` credential in the request's `authorization: Bearer …` metadata.
fn presented_credential<T>(req: &Request<T>) -> Option<Presented> {
    let text = req.metadata().get("authorization")?.to_str().ok()?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))?
        .trim();
    Presented::parse(token)
}

#[tonic::async_trait]
impl merchant_service_server::MerchantService for MerchantService {
    async fn onboard_merchant(
        &self,
        request: Request<pb::OnboardMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let actor = require_operator(&request)?;
        let req = request.get_ref();
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
                Err(e) => application_violations(&mut v, &e),
            },
            (Some(_), None) => {}
        }
        v.into_result()?;
        let Some(app) = app else {
            return Err(ApiError::invalid("application", "is required").into());
        };
        let (mut tx, ctx) = match self.begin(&request).await? {
            Begun::Replay(m) => return Ok(Response::new(m)),
            Begun::Fresh(tx, ctx) => (tx, ctx),
        };
        let id = MerchantId::random();
        let profile = store::Profile::from_application(&app);
        store::insert_merchant(&mut tx, id, app.kind(), &profile)
            .await
            .map_err(|e| match e {
                store::InsertError::DuplicateTaxCode => ApiError::AlreadyExists {
                    resource: "a live merchant with this tax code",
                },
                store::InsertError::Other(e) => ApiError::Internal(e),
            })?;
        store::append_audit(
            &mut tx,
            &NewAuditEvent {
                merchant: id,
                actor: &actor.to_string(),
                action: AuditAction::Onboard,
                from: None,
                to: MerchantStatus::PendingReview,
                reason: "onboarded",
            },
        )
        .await
        .map_err(ApiError::from)?;
        let merchant = self.reread(&mut tx, id).await?;
        self.finish(tx, &ctx, &merchant).await?;
        tracing::info!(merchant_id = %id, kind = %app.kind(), %actor, "merchant onboarded");
        Ok(Response::new(merchant))
    }

    async fn get_merchant(
        &self,
        request: Request<pb::GetMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = principal(&request)?;
        let id = MerchantId::parse(&request.get_ref().merchant_id)
            .map_err(|e| ApiError::invalid("merchant_id", e.to_string()))?;
        require_reader(caller, id)?;
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        let row = store::merchant(&mut conn, id, false)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found_merchant)?;
        Ok(Response::new(convert::merchant_to_pb(&row)))
    }

    async fn update_merchant(
        &self,
        request: Request<pb::UpdateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(self.update(request).await?))
    }

    async fn list_merchants(
        &self,
        request: Request<pb::ListMerchantsRequest>,
    ) -> Result<Response<pb::ListMerchantsResponse>, Status> {
        let caller = principal(&request)?;
        if !caller.is_internal() {
            return Err(
                ApiError::PermissionDenied(format!("{caller} may not list merchants")).into(),
            );
        }
        let req = request.get_ref();
        let mut v = Violations::default();
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
            match crate::domain::BillerCategory::parse(&convert::category_text(req.biller_category))
            {
                Ok(c) => filter.biller_category = Some(c.as_str()),
                Err(_) => v.add("biller_category", "is not a BillerCategory"),
            }
        }
        if !req.mcc.trim().is_empty() {
            match Mcc::parse(&req.mcc) {
                Ok(m) => filter.mcc = Some(m.as_str().to_owned()),
                Err(e) => v.add("mcc", e.to_string()),
            }
        }
        let page_size = v.page_size(req.page_size);
        let fingerprint = filter.fingerprint();
        let fingerprint: Vec<&str> = fingerprint.iter().map(String::as_str).collect();
        let after = match paging::decode(Listing::Merchants, &req.page_token, &fingerprint) {
            Ok(after) => after.unwrap_or(0),
            Err(why) => {
                v.add("page_token", why);
                0
            }
        };
        v.into_result()?;
        let mut rows = store::list_merchants(&self.inner.pool, &filter, after, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|r| paging::encode(Listing::Merchants, r.seq, &fingerprint))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMerchantsResponse {
            merchants: rows.iter().map(convert::merchant_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn approve_merchant(
        &self,
        request: Request<pb::ApproveMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(
            self.change_status(request, Action::Approve).await?,
        ))
    }

    async fn reject_merchant(
        &self,
        request: Request<pb::RejectMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(
            self.change_status(request, Action::Reject).await?,
        ))
    }

    async fn suspend_merchant(
        &self,
        request: Request<pb::SuspendMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(
            self.change_status(request, Action::Suspend).await?,
        ))
    }

    async fn reinstate_merchant(
        &self,
        request: Request<pb::ReinstateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(
            self.change_status(request, Action::Reinstate).await?,
        ))
    }

    async fn close_merchant(
        &self,
        request: Request<pb::CloseMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        Ok(Response::new(
            self.change_status(request, Action::Close).await?,
        ))
    }

    async fn list_merchant_audit_events(
        &self,
        request: Request<pb::ListMerchantAuditEventsRequest>,
    ) -> Result<Response<pb::ListMerchantAuditEventsResponse>, Status> {
        require_operator(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let page_size = v.page_size(req.page_size);
        let filter = id.map(|id| id.to_string()).unwrap_or_default();
        let after = match paging::decode(Listing::AuditEvents, &req.page_token, &[&filter]) {
            Ok(after) => after.unwrap_or(0),
            Err(why) => {
                v.add("page_token", why);
                0
            }
        };
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("merchant_id", "required").into());
        };
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        if store::merchant(&mut conn, id, false)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(not_found_merchant().into());
        }
        drop(conn);
        let mut rows = store::audit_events(&self.inner.pool, id, after, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|r| paging::encode(Listing::AuditEvents, r.id, &[&filter]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMerchantAuditEventsResponse {
            events: rows.iter().map(convert::audit_event_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_static_qr(
        &self,
        request: Request<pb::GetStaticQrRequest>,
    ) -> Result<Response<pb::StaticQr>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let module_px = match req.png_module_px {
            0 => PNG_MODULE_PX_DEFAULT,
            n => match u32::try_from(n) {
                Ok(n) if (1..=PNG_MODULE_PX_MAX).contains(&n) => n,
                _ => {
                    v.add(
                        "png_module_px",
                        format!(
                            "must be 1..={PNG_MODULE_PX_MAX}, or 0 for {PNG_MODULE_PX_DEFAULT}"
                        ),
                    );
                    PNG_MODULE_PX_DEFAULT
                }
            },
        };
        if let Some(id) = id {
            require_reader(caller, id)?;
        }
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("merchant_id", "required").into());
        };
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        let row = store::merchant(&mut conn, id, false)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found_merchant)?;
        drop(conn);
        if row.status == MerchantStatus::Closed {
            return Err(merchant_closed().into());
        }
        let Some(activation) = row.activation else {
            return Err(ApiError::FailedPrecondition {
                reason: "STATIC_QR_NOT_ISSUED",
                message: "the static VietQR is issued when the merchant is first approved".into(),
            }
            .into());
        };
        let payload = activation.static_qr_payload;
        let render = |e: vietqr::RenderError| {
            ApiError::Internal(anyhow::anyhow!("rendering the static VietQR: {e}"))
        };
        let png = vietqr::render_png(&payload, module_px).map_err(render)?;
        let svg = vietqr::render_svg(&payload).map_err(render)?;
        Ok(Response::new(pb::StaticQr {
            merchant_id: id.to_string(),
            payload,
            png,
            svg,
            collection_bank_bin: activation.collection_bank_bin,
            virtual_account_number: activation.virtual_account_number,
        }))
    }

    async fn issue_credential(
        &self,
        request: Request<pb::IssueCredentialRequest>,
    ) -> Result<Response<pb::IssueCredentialResponse>, Status> {
        let actor = require_operator(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let display_name = match TradingName::parse(&req.display_name) {
            Ok(name) => Some(name),
            Err(e) => {
                v.add("display_name", e.to_string());
                None
            }
        };
        v.into_result()?;
        let (Some(id), Some(display_name)) = (id, display_name) else {
            return Err(ApiError::invalid("merchant_id", "required").into());
        };
        let (mut tx, ctx) = match self.begin(&request).await? {
            Begun::Replay(m) => return Ok(Response::new(m)),
            Begun::Fresh(tx, ctx) => (tx, ctx),
        };
        let row = store::merchant(&mut tx, id, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found_merchant)?;
        match row.status {
            MerchantStatus::Closed => return Err(merchant_closed().into()),
            MerchantStatus::Rejected => {
                return Err(ApiError::FailedPrecondition {
                    reason: "MERCHANT_REJECTED",
                    message: "a rejected merchant gets no credentials".into(),
                }
                .into());
            }
            _ => {}
        }
        let active = store::active_credential_count(&mut tx, id)
            .await
            .map_err(ApiError::from)?;
        if active >= CREDENTIALS_PER_MERCHANT_MAX {
            return Err(ApiError::FailedPrecondition {
                reason: "TOO_MANY_CREDENTIALS",
                message: format!(
                    "the merchant has {active} valid credentials, the most allowed; revoke one first"
                ),
            }
            .into());
        }
        let new = credential::generate().map_err(ApiError::from)?;
        let stored = store::insert_credential(
            &mut tx,
            new.id,
            id,
            display_name.as_str(),
            &new.secret_sha256,
            &actor.to_string(),
        )
        .await
        .map_err(ApiError::from)?;
        store::append_audit(
            &mut tx,
            &NewAuditEvent {
                merchant: id,
                actor: &actor.to_string(),
                action: AuditAction::IssueCredential,
                from: Some(row.status),
                to: row.status,
                reason: &format!(
                    "credential {} ({})",
                    credential::id_text(new.id),
                    display_name.as_str()
                ),
            },
        )
        .await
        .map_err(ApiError::from)?;
        let credential = convert::credential_to_pb(&stored);
        // The stored replay leaves the secret out: paymesh keeps no copy of it at rest.
        let without_secret = pb::IssueCredentialResponse {
            credential: Some(credential.clone()),
            secret: String::new(),
        };
        self.finish(tx, &ctx, &without_secret).await?;
        tracing::info!(merchant_id = %id, credential_id = %credential.id, %actor, "credential issued");
        Ok(Response::new(pb::IssueCredentialResponse {
            credential: Some(credential),
            secret: new.token,
        }))
    }

    async fn revoke_credential(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        let actor = require_operator(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let credential_id = credential::parse_id(&req.credential_id);
        if credential_id.is_none() {
            v.add(
                "credential_id",
                "must be a credential id: 32 lower-case hex digits",
            );
        }
        v.into_result()?;
        let (Some(id), Some(credential_id)) = (id, credential_id) else {
            return Err(ApiError::invalid("credential_id", "required").into());
        };
        let (mut tx, ctx) = match self.begin(&request).await? {
            Begun::Replay(m) => return Ok(Response::new(m)),
            Begun::Fresh(tx, ctx) => (tx, ctx),
        };
        let row = store::merchant(&mut tx, id, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found_merchant)?;
        let (stored, newly) =
            store::revoke_credential(&mut tx, id, credential_id, &actor.to_string())
                .await
                .map_err(ApiError::from)?
                .ok_or(ApiError::NotFound {
                    resource: "credential",
                })?;
        if newly {
            store::append_audit(
                &mut tx,
                &NewAuditEvent {
                    merchant: id,
                    actor: &actor.to_string(),
                    action: AuditAction::RevokeCredential,
                    from: Some(row.status),
                    to: row.status,
                    reason: &format!("credential {}", credential::id_text(credential_id)),
                },
            )
            .await
            .map_err(ApiError::from)?;
        }
        let credential = convert::credential_to_pb(&stored);
        self.publish_revocations(&[credential_id]).await?;
        self.finish(tx, &ctx, &credential).await?;
        if newly {
            tracing::info!(merchant_id = %id, credential_id = %credential.id, %actor, "credential revoked");
        }
        Ok(Response::new(credential))
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        require_operator(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let page_size = v.page_size(req.page_size);
        let filter = id.map(|id| id.to_string()).unwrap_or_default();
        let after = match paging::decode(Listing::Credentials, &req.page_token, &[&filter]) {
            Ok(after) => after.unwrap_or(0),
            Err(why) => {
                v.add("page_token", why);
                0
            }
        };
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("merchant_id", "required").into());
        };
        let mut rows = store::list_credentials(&self.inner.pool, id, after, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|r| paging::encode(Listing::Credentials, r.seq, &[&filter]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: rows.iter().map(convert::credential_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn exchange_credential(
        &self,
        request: Request<pb::ExchangeCredentialRequest>,
    ) -> Result<Response<pb::ExchangeCredentialResponse>, Status> {
        // One answer for every failure: a caller learns nothing about which part was wrong.
        let refused = || ApiError::Unauthenticated("invalid API credential".into());
        let presented = presented_credential(&request).ok_or_else(refused)?;
        let check = store::credential_check(&self.inner.pool, presented.id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(refused)?;
        // The hash is compared before anything else is looked at, in constant time.
        if !presented.matches(&check.secret_sha256)
            || check.revoked
            || matches!(
                check.merchant_status,
                MerchantStatus::Closed | MerchantStatus::Rejected
            )
        {
            return Err(refused().into());
        }
        let ttl = self.inner.credential_token_ttl;
        let token = self
            .inner
            .minter
            .mint_for_credential(
                &Principal::Merchant(check.merchant.to_string()),
                ttl.as_secs(),
                &credential::id_text(presented.id),
            )
            .map_err(ApiError::from)?;
        tracing::info!(merchant_id = %check.merchant, credential_id = %credential::id_text(presented.id), "credential exchanged");
        Ok(Response::new(pb::ExchangeCredentialResponse {
            access_token: token,
            expire_time: Some(now_plus(ttl)),
            merchant_id: check.merchant.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_application_field_is_updatable_or_fixed() {
        let raw = crate::domain::RawApplication::default();
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
    fn every_mutating_rpc_needs_a_key() {
        let rpcs = MerchantService::idempotent_rpcs();
        assert_eq!(rpcs.len(), 9);
        assert!(rpcs.iter().all(|(_, rule)| *rule == KeyRule::Required));
    }

    #[test]
    fn reasons_are_bounded() {
        let mut v = Violations::default();
        assert_eq!(v.reason("  documents checked "), "documents checked");
        assert!(v.0.is_empty());
        v.reason("");
        v.reason(&"x".repeat(REASON_CHARS_MAX + 1));
        v.reason("line\nbreak");
        assert_eq!(v.0.len(), 3);
        assert!(v.0.iter().all(|f| f.field == "reason"));
    }
}
