//! `paymesh bills …`: bill payment on the billing service, over gRPC — a biller's policy, bulk
//! loads of its CSV export, its bills, their paper VietQR and the daily collection report, as
//! an operator; a customer's lookup and payment, as a payer channel.
//!
//! The service's address is `billing.listen` (or `--addr`). Tokens are minted from
//! `auth.operator_private_key_file` unless `--token` is given: `channel:{--channel}` for `pay`
//! (only channels pay bills) and for `lookup --channel`, `operator:{--operator}` for the rest.
//! Mutating verbs send an idempotency key: `--idempotency-key`, or a fresh one (printed on
//! stderr). Output is one JSON object on stdout (`report --csv`: the report's CSV); a refused
//! call prints the gRPC code, its reason and message on one line on stderr and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use paymesh_billing::json;
use paymesh_platform::auth::Principal;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::Config;
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::verbs::{finish, keyed, operator, principal, refused, token, vnd};

type Client = BillingServiceClient<InterceptedService<Channel, CallContext>>;

/// What a verb answered: JSON to print, or the refusal.
type Answer = Result<Value, tonic::Status>;

/// Bytes of the file per `UploadBillsCsv` message.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(clap::Args)]
pub struct BillsArgs {
    /// The billing service (host:port); default: billing.listen.
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Bearer token to call with; default: one minted for `channel:{--channel}` (pay,
    /// lookup --channel) or `operator:{--operator}` from auth.operator_private_key_file.
    #[arg(long, global = true, env = "PAYMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Who is acting, for the audit trail (`operator:NAME`); default: the OS user name.
    #[arg(long, global = true, env = "PAYMESH_OPERATOR")]
    operator: Option<String>,
    #[command(subcommand)]
    command: BillsCommand,
}

#[derive(clap::Subcommand)]
enum BillsCommand {
    /// Set a biller's policy (a biller needs one before it posts bills). The whole policy is
    /// replaced: a charge not given is off.
    Policy(Box<PolicyArgs>),
    /// Load the biller's CSV export in one transaction (header:
    /// customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description):
    /// each bill is loaded, unchanged, adjusted or rejected with its line number.
    Upload {
        /// The CSV file (UTF-8, LF or CRLF, at most 64 MiB).
        file: PathBuf,
        #[arg(long)]
        biller: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// One bill.
    Show {
        #[arg(long)]
        biller: String,
        #[arg(long)]
        bill: String,
    },
    /// A biller's bills by bill number, by status and period.
    List {
        #[arg(long)]
        biller: String,
        /// open, partially_paid, paid, cancelled or expired.
        #[arg(long)]
        status: Option<String>,
        /// YYYY-MM.
        #[arg(long)]
        period: Option<String>,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
        /// Follow the page tokens to the end.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a bill nothing was paid of.
    Cancel {
        #[arg(long)]
        biller: String,
        #[arg(long)]
        bill: String,
        /// Why (at most 200 characters).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// The paper bill's VietQR: its payload, and the PNG written with --png.
    Qr {
        #[arg(long)]
        biller: String,
        #[arg(long)]
        bill: String,
        #[arg(long)]
        png: Option<PathBuf>,
        /// Pixels per QR module in the PNG.
        #[arg(long, default_value_t = 8)]
        module_px: i32,
    },
    /// A customer's outstanding bills as a payer channel sees them (amount due today, name
    /// masked), and the lookup reference a payment quotes.
    Lookup {
        #[arg(long)]
        biller: String,
        #[arg(long)]
        customer: String,
        /// Look up as this payer channel (its reference is then good for its payment);
        /// default: as the operator.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Pay a customer's bills as a payer channel: looks them up, then pays every outstanding
    /// bill in full, or --bill (in full unless --amount).
    Pay(PayArgs),
    /// A biller's payments, newest first.
    Payments {
        #[arg(long)]
        biller: String,
        /// Only this bill's.
        #[arg(long)]
        bill: Option<String>,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// A biller's collections of one day (Asia/Ho_Chi_Minh) per category and payer, with
    /// totals.
    Report {
        #[arg(long)]
        biller: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Print the report as CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(clap::Args)]
struct PolicyArgs {
    #[arg(long)]
    biller: String,
    /// A regular expression customer codes match in full (upper-cased, trimmed), e.g.
    /// `P[A-Z][0-9]{11}`.
    #[arg(long)]
    pattern: String,
    /// EXACT, EXACT_AND_BELOW (part payments down to --minimum-part) or EXACT_AND_ABOVE.
    #[arg(long)]
    rule: String,
    /// EXACT_AND_BELOW: the smallest part payment, whole đồng (default: any).
    #[arg(long)]
    minimum_part: Option<String>,
    /// A late fee of this many đồng, charged once on what is unpaid after the due date.
    #[arg(long, group = "late_fee")]
    late_fee_fixed: Option<String>,
    /// A late fee of this percentage of the bill (at most 2 decimals), rounded down.
    #[arg(long, group = "late_fee")]
    late_fee_percent: Option<String>,
    /// The late fee is charged from this many days after the due date (0: the day after).
    #[arg(long, requires = "late_fee")]
    late_fee_days: Option<u32>,
    /// An early-payment discount of this many đồng, when the bill is paid in full.
    #[arg(long, group = "discount")]
    discount_fixed: Option<String>,
    /// An early-payment discount of this percentage of the bill, rounded down.
    #[arg(long, group = "discount")]
    discount_percent: Option<String>,
    /// The discount is given up to this many days after the issue date (0: that day only).
    #[arg(long, requires = "discount")]
    discount_days: Option<u32>,
    /// Bills cannot be paid this many days after their due date (default 0: never expire).
    #[arg(long)]
    expires_after_days: Option<u32>,
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(clap::Args)]
struct PayArgs {
    #[arg(long, required_unless_present = "lookup_reference")]
    biller: Option<String>,
    #[arg(long, required_unless_present = "lookup_reference")]
    customer: Option<String>,
    /// Pay only this bill (default: every outstanding bill of the customer, in full).
    #[arg(long)]
    bill: Option<String>,
    /// Whole đồng (default: the bill's amount due today); as the biller's rule allows.
    #[arg(long, requires = "bill")]
    amount: Option<String>,
    /// The payer channel paying (its clearing account is debited).
    #[arg(long)]
    channel: String,
    /// The channel's own reference for the payment (default: a fresh UUID); a reference that
    /// already paid one of the bills is refused (CHANNEL_REFERENCE_USED).
    #[arg(long)]
    reference: Option<String>,
    /// Quote this lookup reference (from `lookup --channel`) instead of looking up again: a
    /// retry under the same --idempotency-key must send the same request.
    #[arg(long, conflicts_with_all = ["biller", "customer"])]
    lookup_reference: Option<String>,
    #[arg(long)]
    idempotency_key: Option<String>,
}

fn client(cfg: &Config, addr: Option<&str>, token: &str) -> anyhow::Result<Client> {
    let addr = match addr {
        Some(a) => a.to_owned(),
        None => cfg.service("billing")?.addr("listen")?.to_string(),
    };
    Ok(BillingServiceClient::with_interceptor(
        channel(&addr)?,
        CallContext::with_token(token)?,
    ))
}

/// `open`, `PAID`, `partially-paid` … as a bill status.
fn bill_status(text: &str) -> anyhow::Result<pb::BillStatus> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    pb::BillStatus::from_str_name(&format!("BILL_STATUS_{upper}"))
        .filter(|s| *s != pb::BillStatus::Unspecified)
        .with_context(|| {
            format!("--status {text:?}: open, partially_paid, paid, cancelled or expired")
        })
}

/// `EXACT`, `exact_and_below`, `exact-and-above` as an amount rule.
fn amount_rule(text: &str) -> anyhow::Result<pb::AmountRule> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    pb::AmountRule::from_str_name(&format!("AMOUNT_RULE_{upper}"))
        .filter(|r| *r != pb::AmountRule::Unspecified)
        .with_context(|| format!("--rule {text:?}: EXACT, EXACT_AND_BELOW or EXACT_AND_ABOVE"))
}

/// A late fee or discount from its flags: none when neither amount is given.
fn charge(fixed: Option<String>, percent: Option<String>, days: Option<u32>) -> Option<pb::Charge> {
    if fixed.is_none() && percent.is_none() {
        return None;
    }
    Some(pb::Charge {
        fixed: fixed.unwrap_or_default(),
        percent: percent
            .map(|p| p.trim().trim_end_matches('%').to_owned())
            .unwrap_or_default(),
        days: days.unwrap_or(0),
    })
}

/// Whom the verb calls as: the payer channel for `pay` and `lookup --channel`, else the
/// operator.
fn caller(command: &BillsCommand, operator_given: Option<&str>) -> anyhow::Result<Principal> {
    match command {
        BillsCommand::Pay(p) => principal("channel", &p.channel, "--channel"),
        BillsCommand::Lookup {
            channel: Some(c), ..
        } => principal("channel", c, "--channel"),
        _ => operator(operator_given),
    }
}

pub async fn run(args: BillsArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let caller = caller(&args.command, args.operator.as_deref())?;
    let token = token(cfg, args.token.as_deref(), &caller)?;
    let mut client = client(cfg, args.addr.as_deref(), &token)?;
    let result = match args.command {
        BillsCommand::Policy(p) => set_policy(&mut client, *p).await?,
        BillsCommand::Upload {
            file,
            biller,
            idempotency_key,
        } => upload(&mut client, &file, biller, idempotency_key).await?,
        BillsCommand::Show { biller, bill } => client
            .get_bill(pb::GetBillRequest {
                biller_id: biller,
                bill_number: bill,
            })
            .await
            .map(|r| r.into_inner().bill.as_ref().map_or(Value::Null, json::bill)),
        BillsCommand::List {
            biller,
            status,
            period,
            page_size,
            page_token,
            all,
        } => {
            let request = pb::ListBillsRequest {
                biller_id: biller,
                status: status
                    .as_deref()
                    .map(bill_status)
                    .transpose()?
                    .unwrap_or_default() as i32,
                period: period.unwrap_or_default(),
                page_size,
                page_token,
            };
            list(&mut client, request, all).await
        }
        BillsCommand::Cancel {
            biller,
            bill,
            reason,
            idempotency_key,
        } => {
            let request = pb::CancelBillRequest {
                biller_id: biller,
                bill_number: bill,
                reason,
            };
            client
                .cancel_bill(keyed(request, idempotency_key)?)
                .await
                .map(|r| r.into_inner().bill.as_ref().map_or(Value::Null, json::bill))
        }
        BillsCommand::Qr {
            biller,
            bill,
            png,
            module_px,
        } => {
            let request = pb::GetBillQrRequest {
                biller_id: biller,
                bill_number: bill,
                render_png: png.is_some(),
                render_svg: false,
                png_module_px: module_px,
            };
            match client.get_bill_qr(request).await {
                Ok(r) => {
                    let r = r.into_inner();
                    if let Some(path) = &png {
                        std::fs::write(path, &r.png)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                    Ok(json!({
                        "qr_payload": r.qr_payload,
                        "png": png.as_ref().map(|p| p.display().to_string()),
                    }))
                }
                Err(status) => Err(status),
            }
        }
        BillsCommand::Lookup {
            biller, customer, ..
        } => client
            .lookup_bills(pb::LookupBillsRequest {
                biller_id: biller,
                customer_code: customer,
            })
            .await
            .map(|r| json::lookup(&r.into_inner())),
        BillsCommand::Pay(p) => pay(&mut client, p).await?,
        BillsCommand::Payments {
            biller,
            bill,
            page_size,
            page_token,
        } => client
            .list_bill_payments(pb::ListBillPaymentsRequest {
                biller_id: biller,
                bill_number: bill.unwrap_or_default(),
                page_size,
                page_token,
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                json!({
                    "payments": r.payments.iter().map(json::payment).collect::<Vec<_>>(),
                    "next_page_token": r.next_page_token,
                })
            }),
        BillsCommand::Report { biller, date, csv } => {
            let report = match client
                .get_collection_report(pb::GetCollectionReportRequest {
                    biller_id: biller,
                    date,
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(status) => return Ok(refused(&status)),
            };
            if csv {
                print!("{}", report.csv);
                return Ok(ExitCode::SUCCESS);
            }
            Ok(json::report(&report))
        }
    };
    finish(result)
}

async fn set_policy(client: &mut Client, p: PolicyArgs) -> anyhow::Result<Answer> {
    let policy = pb::BillerPolicy {
        biller_id: p.biller,
        customer_code_pattern: p.pattern,
        amount_rule: amount_rule(&p.rule)? as i32,
        minimum_part: p.minimum_part.unwrap_or_default(),
        late_fee: charge(p.late_fee_fixed, p.late_fee_percent, p.late_fee_days),
        early_discount: charge(p.discount_fixed, p.discount_percent, p.discount_days),
        expires_after_days: p.expires_after_days.unwrap_or(0),
        ..Default::default()
    };
    let request = pb::SetBillerPolicyRequest {
        policy: Some(policy),
    };
    Ok(client
        .set_biller_policy(keyed(request, p.idempotency_key)?)
        .await
        .map(|r| {
            r.into_inner()
                .policy
                .as_ref()
                .map_or(Value::Null, json::policy)
        }))
}

/// The file in chunks, the first naming the biller. The whole file is read before anything is
/// sent: a file that cannot be read loads nothing (a stream cut short would load part of it).
async fn upload(
    client: &mut Client,
    file: &std::path::Path,
    biller: String,
    key: Option<String>,
) -> anyhow::Result<Answer> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut messages: Vec<pb::UploadBillsCsvRequest> = bytes
        .chunks(CHUNK_BYTES)
        .map(|chunk| pb::UploadBillsCsvRequest {
            biller_id: String::new(),
            chunk: chunk.to_vec(),
        })
        .collect();
    drop(bytes);
    match messages.first_mut() {
        Some(first) => first.biller_id = biller,
        // An empty file: the service says what is missing.
        None => messages.push(pb::UploadBillsCsvRequest {
            biller_id: biller,
            chunk: Vec::new(),
        }),
    }
    let request = keyed(futures::stream::iter(messages), key)?;
    Ok(client
        .upload_bills_csv(request)
        .await
        .map(|r| json::uploaded(&r.into_inner())))
}

/// A page of bills, or every page with `all`.
async fn list(client: &mut Client, mut request: pb::ListBillsRequest, all: bool) -> Answer {
    let mut bills = Vec::new();
    loop {
        let page = client.list_bills(request.clone()).await?.into_inner();
        bills.extend(page.bills.iter().map(json::bill));
        if !all || page.next_page_token.is_empty() {
            return Ok(json!({
                "bills": bills,
                "next_page_token": page.next_page_token,
            }));
        }
        request.page_token = page.next_page_token;
    }
}

/// Looks the customer up as the channel (unless a lookup reference is given), then pays
/// quoting the lookup's reference.
async fn pay(client: &mut Client, p: PayArgs) -> anyhow::Result<Answer> {
    let lookup_reference = match p.lookup_reference {
        Some(reference) => reference,
        None => {
            let (Some(biller), Some(customer)) = (p.biller, p.customer) else {
                anyhow::bail!("--biller and --customer (or --lookup-reference) are required");
            };
            let request = pb::LookupBillsRequest {
                biller_id: biller,
                customer_code: customer,
            };
            match client.lookup_bills(request).await {
                Ok(r) => r.into_inner().lookup_reference,
                Err(status) => return Ok(Err(status)),
            }
        }
    };
    let bills = p
        .bill
        .map(|number| pb::BillAmount {
            bill_number: number,
            amount: p.amount.as_deref().map(vnd),
        })
        .into_iter()
        .collect();
    let request = pb::PayBillRequest {
        lookup_reference,
        bills,
        channel_reference: p
            .reference
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    };
    Ok(client
        .pay_bill(keyed(request, p.idempotency_key)?)
        .await
        .map(|r| json::paid(&r.into_inner())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_enums() {
        assert_eq!(bill_status("open").unwrap(), pb::BillStatus::Open);
        assert_eq!(
            bill_status("partially-paid").unwrap(),
            pb::BillStatus::PartiallyPaid
        );
        assert!(bill_status("unspecified").is_err());
        assert!(bill_status("late").is_err());
        assert_eq!(amount_rule("EXACT").unwrap(), pb::AmountRule::Exact);
        assert_eq!(
            amount_rule("exact_and_below").unwrap(),
            pb::AmountRule::ExactAndBelow
        );
        assert!(amount_rule("ANY").is_err());
    }

    #[test]
    fn a_charge_is_given_by_its_amount() {
        assert_eq!(charge(None, None, Some(3)), None);
        let c = charge(None, Some("2.5%".into()), Some(3)).unwrap();
        assert_eq!(
            (c.fixed.as_str(), c.percent.as_str(), c.days),
            ("", "2.5", 3)
        );
        let c = charge(Some("20000".into()), None, None).unwrap();
        assert_eq!((c.fixed.as_str(), c.days), ("20000", 0));
    }

    #[test]
    fn pay_calls_as_its_channel_and_lookup_as_the_operator_unless_told() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bills: BillsArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("bills").chain(args.iter().copied()))
                .map(|c| c.bills)
        };
        let pay = parse(&[
            "pay",
            "--biller",
            "b",
            "--customer",
            "c",
            "--channel",
            "kiosk-1",
        ])
        .unwrap();
        assert_eq!(
            caller(&pay.command, Some("alice")).unwrap(),
            Principal::Channel("kiosk-1".into())
        );
        let lookup = parse(&["lookup", "--biller", "b", "--customer", "c"]).unwrap();
        assert_eq!(
            caller(&lookup.command, Some("alice")).unwrap(),
            Principal::Operator("alice".into())
        );
        // --amount needs --bill; one late fee, fixed or percent.
        assert!(parse(&["pay", "--biller", "b", "--customer", "c", "--channel", "k"]).is_ok());
        assert!(
            parse(&[
                "pay",
                "--biller",
                "b",
                "--customer",
                "c",
                "--channel",
                "k",
                "--amount",
                "5"
            ])
            .is_err()
        );
        let policy = [
            "policy",
            "--biller",
            "b",
            "--pattern",
            "[0-9]{8}",
            "--rule",
            "EXACT",
        ];
        assert!(parse(&policy).is_ok());
        let both = [
            &policy[..],
            &["--late-fee-fixed", "1", "--late-fee-percent", "2"],
        ]
        .concat();
        assert!(parse(&both).is_err());
        let days_alone = [&policy[..], &["--late-fee-days", "3"]].concat();
        assert!(parse(&days_alone).is_err());
    }
}
