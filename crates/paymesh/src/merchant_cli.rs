//! `paymesh merchant …`: the operator's verbs on the merchant service, over gRPC.
//!
//! The service's address is `merchant.listen` (or `--addr`); the bearer token is minted from
//! `auth.operator_private_key_file` for `operator:{name}` — `--operator`, else the OS user
//! (`$USER`), else `cli` — so the audit log names who acted (or given with `--token`). Mutating
//! verbs send an idempotency key: `--idempotency-key`, or a fresh one (printed on stderr so a
//! failed call can be retried with it). Output is JSON on stdout; a refused call prints the
//! gRPC code, the reason and every bad field on stderr and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::Config;
use paymesh_platform::hex;
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use serde_json::{Value, json};

use crate::verbs::{keyed, operator_name, print, refused, time};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Client = MerchantServiceClient<InterceptedService<Channel, CallContext>>;

/// Lifetime of the operator token minted for one command.
const TOKEN_TTL_SECONDS: u64 = 300;

#[derive(clap::Args)]
pub struct MerchantArgs {
    /// The merchant service (host:port); default: merchant.listen.
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Bearer token to call with; default: one minted for `operator:{--operator}` from
    /// auth.operator_private_key_file.
    #[arg(long, global = true, env = "PAYMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Who is acting, for the audit log (`operator:NAME`); default: the OS user name.
    #[arg(long, global = true, env = "PAYMESH_OPERATOR")]
    operator: Option<String>,
    #[command(subcommand)]
    command: MerchantCommand,
}

#[derive(clap::Subcommand)]
enum MerchantCommand {
    /// Onboard a vendor or a biller (PENDING_REVIEW until approved).
    Onboard(Box<OnboardArgs>),
    /// Approve a merchant: opens its ledger accounts, assigns its virtual account, issues its
    /// static VietQR. `--etag` is the merchant's etag as reviewed (`show` prints it): a
    /// merchant changed since is refused (ETAG_MISMATCH) and is to be reviewed again.
    Approve(ReviewArgs),
    /// Reject a merchant under review (`--etag` as for approve).
    Reject(ReviewArgs),
    /// Suspend an active merchant.
    Suspend(StatusArgs),
    /// Reinstate a suspended merchant.
    Reinstate(StatusArgs),
    /// Close a merchant (final; revokes its API credentials).
    Close(StatusArgs),
    /// Set or clear a merchant's own fee plan.
    ///
    /// A plan is `none`, `flat:AMOUNT` or `percent:RATE[,min:AMOUNT][,cap:AMOUNT]`, in whole
    /// đồng (RATE in %, at most 4 decimals); `--default` clears it, so the payment service's
    /// default (payment.fee_plan) applies. Rounding: paymesh_money::fees.
    FeePlan(FeePlanArgs),
    /// List merchants, with filters.
    List(ListArgs),
    /// Show one merchant.
    Show { id: String },
    /// Print a merchant's static VietQR payload; write it as PNG and/or SVG.
    Qr {
        id: String,
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Pixels per QR module in the PNG (1-32).
        #[arg(long, default_value_t = 8)]
        module_px: i32,
    },
    /// A merchant's audit log.
    Audit { id: String },
    /// A one-time sign-in link to a vendor's stall page (from the stall service): prints it,
    /// its expiry and its QR as text (`qr_text`, also drawn on stderr when it is a terminal);
    /// `--png` writes the QR as an image to scan with the vendor's phone.
    Link {
        id: String,
        /// The stall service (host:port); default: stall.listen.
        #[arg(long)]
        stall_addr: Option<String>,
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct OnboardArgs {
    #[arg(long, value_parser = ["vendor", "biller"])]
    kind: String,
    #[arg(long)]
    business_name: String,
    #[arg(long, default_value = "")]
    trading_name: String,
    #[arg(long)]
    tax_code: String,
    /// The owner's citizen id (CCCD): required for vendors.
    #[arg(long, default_value = "")]
    owner_citizen_id: String,
    #[arg(long)]
    phone: String,
    #[arg(long)]
    address: String,
    /// Vendors only.
    #[arg(long, default_value = "")]
    market: String,
    /// Vendors only.
    #[arg(long, default_value = "")]
    stall: String,
    #[arg(long)]
    mcc: String,
    /// Billers only: electricity, water, tuition, hospital_fee, administrative_fee.
    #[arg(long)]
    category: Option<String>,
    /// The settlement bank's BIN.
    #[arg(long)]
    bank_bin: String,
    /// The settlement account number.
    #[arg(long)]
    account: String,
    /// The merchant's own fee plan (as for `fee-plan`); default: the payment service's.
    #[arg(long, default_value = "")]
    fee_plan: String,
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(clap::Args)]
struct StatusArgs {
    id: String,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(clap::Args)]
struct FeePlanArgs {
    id: String,
    /// The plan, e.g. `percent:0.6,min:1000,cap:50000`, `flat:2000` or `none` (no fee).
    #[arg(long, required_unless_present = "default", conflicts_with = "default")]
    plan: Option<String>,
    /// Clear the merchant's own plan: the payment service's default applies.
    #[arg(long)]
    default: bool,
    /// Why (kept in the audit log, with the old and new plans).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// Approve and reject: a status change bound to the version the operator reviewed.
#[derive(clap::Args)]
struct ReviewArgs {
    #[command(flatten)]
    status: StatusArgs,
    /// The merchant's etag as reviewed (`paymesh merchant show <id>` prints it).
    #[arg(long)]
    etag: String,
}

#[derive(clap::Args)]
struct ListArgs {
    /// PENDING_REVIEW, ACTIVE, REJECTED, SUSPENDED or CLOSED.
    #[arg(long)]
    status: Option<String>,
    /// vendor or biller.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    market: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    mcc: Option<String>,
    /// A part of the business or trading name (case and diacritics ignored).
    #[arg(long)]
    name: Option<String>,
    /// The merchant whose virtual account this is.
    #[arg(long)]
    virtual_account: Option<String>,
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    #[arg(long, default_value = "")]
    page_token: String,
    /// Follow the page tokens to the end.
    #[arg(long)]
    all: bool,
}

fn category(name: &str) -> anyhow::Result<pb::BillerCategory> {
    pb::BillerCategory::from_str_name(&format!(
        "BILLER_CATEGORY_{}",
        name.trim().to_ascii_uppercase()
    ))
    .with_context(|| {
        format!("unknown category {name:?}: electricity, water, tuition, hospital_fee, administrative_fee")
    })
}

fn category_name(value: i32) -> String {
    pb::BillerCategory::try_from(value)
        .ok()
        .filter(|c| *c != pb::BillerCategory::Unspecified)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("BILLER_CATEGORY_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn status(name: &str) -> anyhow::Result<pb::MerchantStatus> {
    pb::MerchantStatus::from_str_name(&format!(
        "MERCHANT_STATUS_{}",
        name.trim().to_ascii_uppercase()
    ))
    .with_context(|| format!("unknown status {name:?}"))
}

fn status_name(value: i32) -> String {
    pb::MerchantStatus::try_from(value)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("MERCHANT_STATUS_")
                .to_string()
        })
        .unwrap_or_else(|_| value.to_string())
}

fn kind(name: &str) -> anyhow::Result<pb::MerchantKind> {
    pb::MerchantKind::from_str_name(&format!(
        "MERCHANT_KIND_{}",
        name.trim().to_ascii_uppercase()
    ))
    .with_context(|| format!("unknown kind {name:?}: vendor or biller"))
}

fn merchant_json(m: &pb::Merchant) -> Value {
    json!({
        "id": m.id,
        "kind": pb::MerchantKind::try_from(m.kind)
            .map(|k| k.as_str_name().trim_start_matches("MERCHANT_KIND_").to_ascii_lowercase())
            .unwrap_or_default(),
        "status": status_name(m.status),
        "business_name": m.business_name,
        "trading_name": m.trading_name,
        "tax_code": m.tax_code,
        "owner_citizen_id": m.owner_citizen_id_masked,
        "phone": m.phone_masked,
        "address": m.address,
        "market_name": m.market_name,
        "stall_number": m.stall_number,
        "mcc": m.mcc,
        "biller_category": category_name(m.biller_category),
        "settlement_bank_bin": m.settlement_bank_bin,
        "settlement_account_number": m.settlement_account_number_masked,
        "virtual_account_number": m.virtual_account_number,
        "collection_bank_bin": m.collection_bank_bin,
        "payable_account_id": hex(&m.payable_account_id),
        "receivable_account_id": hex(&m.receivable_account_id),
        "create_time": time(&m.create_time),
        "update_time": time(&m.update_time),
        "activate_time": time(&m.activate_time),
        "etag": m.etag,
        // Empty: the payment service's default plan.
        "fee_plan": m.fee_plan,
    })
}

fn audit_json(e: &pb::AuditEvent) -> Value {
    json!({
        "id": e.id,
        "time": time(&e.create_time),
        "actor": e.actor,
        "action": pb::AuditAction::try_from(e.action)
            .map(|a| a.as_str_name().trim_start_matches("AUDIT_ACTION_").to_string())
            .unwrap_or_default(),
        "from": if e.from_status == 0 { Value::Null } else { json!(status_name(e.from_status)) },
        "to": status_name(e.to_status),
        "reason": e.reason,
    })
}

/// The bearer token of this command: `--token`, or one minted for `operator:{--operator}`.
fn token(args: &MerchantArgs, cfg: &Config) -> anyhow::Result<String> {
    Ok(match &args.token {
        Some(t) => t.clone(),
        None => {
            let name = operator_name(args.operator.as_deref());
            let operator = Principal::parse(&format!("operator:{name}"))
                .map_err(|e| anyhow::anyhow!("--operator {name:?}: {e}"))?;
            Minter::operator_from_config(&cfg.auth)
                .context("minting an operator token (or pass --token)")?
                .mint(&operator, TOKEN_TTL_SECONDS)?
        }
    })
}

fn client(args: &MerchantArgs, cfg: &Config) -> anyhow::Result<Client> {
    let token = token(args, cfg)?;
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => cfg.service("merchant")?.addr("listen")?.to_string(),
    };
    Ok(MerchantServiceClient::with_interceptor(
        channel(&addr)?,
        CallContext::with_token(&token)?,
    ))
}

/// What a verb answered: JSON to print, or the refusal.
type Answer = Result<Value, tonic::Status>;

pub async fn run(args: MerchantArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    if let MerchantCommand::Link {
        id,
        stall_addr,
        png,
    } = &args.command
    {
        return finish(link(&args, cfg, id, stall_addr.as_deref(), png.as_deref()).await?);
    }
    let mut client = client(&args, cfg)?;
    let result = match args.command {
        MerchantCommand::Onboard(a) => onboard(&mut client, *a).await?,
        MerchantCommand::Approve(r) => review(&mut client, Review::Approve, r).await?,
        MerchantCommand::Reject(r) => review(&mut client, Review::Reject, r).await?,
        MerchantCommand::Suspend(s) => change_status(&mut client, Change::Suspend, s).await?,
        MerchantCommand::Reinstate(s) => change_status(&mut client, Change::Reinstate, s).await?,
        MerchantCommand::Close(s) => change_status(&mut client, Change::Close, s).await?,
        MerchantCommand::FeePlan(f) => fee_plan(&mut client, f).await?,
        MerchantCommand::Show { id } => client
            .get_merchant(pb::GetMerchantRequest { merchant_id: id })
            .await
            .map(|r| merchant_json(&r.into_inner())),
        MerchantCommand::List(l) => list(&mut client, l).await?,
        MerchantCommand::Audit { id } => audit(&mut client, id).await,
        MerchantCommand::Qr {
            id,
            png,
            svg,
            module_px,
        } => qr(&mut client, id, module_px, png, svg).await?,
        MerchantCommand::Link { .. } => unreachable_link(),
    };
    finish(result)
}

/// `link` is answered before the merchant client is made.
fn unreachable_link() -> Answer {
    Err(tonic::Status::internal(
        "link is handled by the stall service",
    ))
}

fn finish(result: Answer) -> anyhow::Result<ExitCode> {
    match result {
        Ok(value) => {
            print(&value)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => Ok(refused(&status)),
    }
}

async fn onboard(client: &mut Client, a: OnboardArgs) -> anyhow::Result<Answer> {
    let biller_category = a
        .category
        .as_deref()
        .map(category)
        .transpose()?
        .unwrap_or_default() as i32;
    let request = pb::OnboardMerchantRequest {
        kind: kind(&a.kind)? as i32,
        application: Some(pb::MerchantApplication {
            business_name: a.business_name,
            trading_name: a.trading_name,
            tax_code: a.tax_code,
            owner_citizen_id: a.owner_citizen_id,
            phone: a.phone,
            address: a.address,
            market_name: a.market,
            stall_number: a.stall,
            mcc: a.mcc,
            biller_category,
            settlement_bank_bin: a.bank_bin,
            settlement_account_number: a.account,
        }),
        fee_plan: a.fee_plan,
    };
    Ok(client
        .onboard_merchant(keyed(request, a.idempotency_key)?)
        .await
        .map(|r| merchant_json(&r.into_inner())))
}

/// The two review verbs: bound to the etag the operator reviewed.
#[derive(Clone, Copy)]
enum Review {
    Approve,
    Reject,
}

/// The other three status verbs.
#[derive(Clone, Copy)]
enum Change {
    Suspend,
    Reinstate,
    Close,
}

/// Approve or reject, with the etag the operator reviewed.
async fn review(client: &mut Client, review: Review, r: ReviewArgs) -> anyhow::Result<Answer> {
    let (merchant_id, reason, key, etag) = (
        r.status.id,
        r.status.reason,
        r.status.idempotency_key,
        r.etag,
    );
    let answer = match review {
        Review::Approve => {
            let r = pb::ApproveMerchantRequest {
                merchant_id,
                reason,
                etag,
            };
            client.approve_merchant(keyed(r, key)?).await
        }
        Review::Reject => {
            let r = pb::RejectMerchantRequest {
                merchant_id,
                reason,
                etag,
            };
            client.reject_merchant(keyed(r, key)?).await
        }
    };
    Ok(answer.map(|r| merchant_json(&r.into_inner())))
}

async fn change_status(
    client: &mut Client,
    change: Change,
    s: StatusArgs,
) -> anyhow::Result<Answer> {
    let (merchant_id, reason, key) = (s.id, s.reason, s.idempotency_key);
    let answer = match change {
        Change::Suspend => {
            let r = pb::SuspendMerchantRequest {
                merchant_id,
                reason,
            };
            client.suspend_merchant(keyed(r, key)?).await
        }
        Change::Reinstate => {
            let r = pb::ReinstateMerchantRequest {
                merchant_id,
                reason,
            };
            client.reinstate_merchant(keyed(r, key)?).await
        }
        Change::Close => {
            let r = pb::CloseMerchantRequest {
                merchant_id,
                reason,
            };
            client.close_merchant(keyed(r, key)?).await
        }
    };
    Ok(answer.map(|r| merchant_json(&r.into_inner())))
}

/// Sets the merchant's own fee plan, or clears it (`--default`).
async fn fee_plan(client: &mut Client, f: FeePlanArgs) -> anyhow::Result<Answer> {
    let request = pb::SetMerchantFeePlanRequest {
        merchant_id: f.id,
        // Empty (`--default`) clears it; the service parses and names a bad plan.
        fee_plan: f.plan.unwrap_or_default(),
        reason: f.reason,
    };
    Ok(client
        .set_merchant_fee_plan(keyed(request, f.idempotency_key)?)
        .await
        .map(|r| merchant_json(&r.into_inner())))
}

/// Every audit event of a merchant, all pages.
async fn audit(client: &mut Client, id: String) -> Answer {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
                merchant_id: id.clone(),
                page_size: 100,
                page_token,
            })
            .await?
            .into_inner();
        events.extend(page.events.iter().map(audit_json));
        if page.next_page_token.is_empty() {
            return Ok(Value::Array(events));
        }
        page_token = page.next_page_token;
    }
}

/// The static QR: its payload and where the PNG/SVG went, as JSON.
async fn qr(
    client: &mut Client,
    id: String,
    module_px: i32,
    png: Option<PathBuf>,
    svg: Option<PathBuf>,
) -> anyhow::Result<Answer> {
    let qr = match client
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: id,
            png_module_px: module_px,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    for (path, bytes) in [(&png, &qr.png), (&svg, &qr.svg.as_bytes().to_vec())] {
        if let Some(path) = path {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    Ok(Ok(json!({
        "merchant_id": qr.merchant_id,
        "payload": qr.payload,
        "collection_bank_bin": qr.collection_bank_bin,
        "virtual_account_number": qr.virtual_account_number,
        "png": shown(&png),
        "svg": shown(&svg),
    })))
}

/// A sign-in link for a vendor's stall page, from the stall service.
async fn link(
    args: &MerchantArgs,
    cfg: &Config,
    id: &str,
    stall_addr: Option<&str>,
    png: Option<&std::path::Path>,
) -> anyhow::Result<Answer> {
    use paymesh_proto::stall::v1 as spb;
    use paymesh_proto::stall::v1::stall_service_client::StallServiceClient;
    let addr = match stall_addr {
        Some(a) => a.to_owned(),
        None => cfg.service("stall")?.addr("listen")?.to_string(),
    };
    let mut client = StallServiceClient::with_interceptor(
        channel(&addr)?,
        CallContext::with_token(&token(args, cfg)?)?,
    );
    let answer = match client
        .create_sign_in_link(spb::CreateSignInLinkRequest {
            merchant_id: id.to_owned(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    let qr_text = vietqr::render_text(&answer.url).context("drawing the link's QR")?;
    if let Some(path) = png {
        let image = vietqr::render_png(&answer.url, 8).context("rendering the link's QR")?;
        std::fs::write(path, image).with_context(|| format!("writing {}", path.display()))?;
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{qr_text}");
    }
    Ok(Ok(json!({
        "merchant_id": answer.merchant_id,
        "url": answer.url,
        "expire_time": time(&answer.expire_time),
        "qr_text": qr_text,
        "png": png.map(|p| p.display().to_string()),
    })))
}

async fn list(client: &mut Client, l: ListArgs) -> anyhow::Result<Result<Value, tonic::Status>> {
    let mut request = pb::ListMerchantsRequest {
        page_size: l.page_size,
        page_token: l.page_token,
        status: l
            .status
            .as_deref()
            .map(status)
            .transpose()?
            .unwrap_or_default() as i32,
        kind: l.kind.as_deref().map(kind).transpose()?.unwrap_or_default() as i32,
        market_name: l.market.unwrap_or_default(),
        biller_category: l
            .category
            .as_deref()
            .map(category)
            .transpose()?
            .unwrap_or_default() as i32,
        mcc: l.mcc.unwrap_or_default(),
        name_contains: l.name.unwrap_or_default(),
        virtual_account_number: l.virtual_account.unwrap_or_default(),
    };
    let mut merchants = Vec::new();
    loop {
        let page = match client.list_merchants(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        merchants.extend(page.merchants.iter().map(merchant_json));
        if !l.all || page.next_page_token.is_empty() {
            return Ok(Ok(json!({
                "merchants": merchants,
                "next_page_token": page.next_page_token,
            })));
        }
        request.page_token = page.next_page_token;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_enums() {
        assert_eq!(
            category("hospital_fee").unwrap(),
            pb::BillerCategory::HospitalFee
        );
        assert_eq!(
            category_name(pb::BillerCategory::HospitalFee as i32),
            "hospital_fee"
        );
        assert_eq!(category_name(0), "");
        assert!(category("gas").is_err());
        assert_eq!(
            status("pending_review").unwrap(),
            pb::MerchantStatus::PendingReview
        );
        assert_eq!(status_name(pb::MerchantStatus::Active as i32), "ACTIVE");
        assert_eq!(kind("biller").unwrap(), pb::MerchantKind::Biller);
        assert!(kind("bank").is_err());
    }
}
