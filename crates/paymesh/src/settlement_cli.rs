//! `paymesh settlement …` and `paymesh recon …`: settlement windows and reconciliation on the
//! settlement service, over gRPC.
//!
//! The service's address is `settlement.listen` (or `--addr`). Tokens are minted from
//! `auth.operator_private_key_file` unless `--token` is given: `bank:{--bank}` for `recon pull`
//! (a bank pulls its own files), `operator:{--operator}` for the rest. Output is one JSON
//! object on stdout; a refused call prints the gRPC code, its reason and message on one line
//! on stderr and exits 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use paymesh_platform::auth::Principal;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::Config;
use paymesh_proto::settlement::v1 as pb;
use paymesh_proto::settlement::v1::settlement_service_client::SettlementServiceClient;
use paymesh_settlement::json;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::verbs::{finish, operator, principal, token};

type Client = SettlementServiceClient<InterceptedService<Channel, CallContext>>;

/// Bytes of the statement per `ImportStatement` message.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(clap::Args)]
pub struct SettlementArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: SettlementCommand,
}

#[derive(clap::Args)]
struct Common {
    /// The settlement service (host:port); default: settlement.listen.
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Bearer token to call with; default: one minted from auth.operator_private_key_file.
    #[arg(long, global = true, env = "PAYMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Who is acting, for the audit trail (`operator:NAME`); default: the OS user name.
    #[arg(long, global = true, env = "PAYMESH_OPERATOR")]
    operator: Option<String>,
}

#[derive(clap::Subcommand)]
enum SettlementCommand {
    /// Close a business day's window: seal the ledger at the cut-off, post every merchant's and
    /// biller's payout, write the files banks pull. Closing again finishes what failed.
    Close {
        /// The business day, YYYY-MM-DD (Asia/Ho_Chi_Minh).
        #[arg(long)]
        date: String,
        /// Close early at this time instead of the configured cut-off: `now` or RFC 3339.
        #[arg(long)]
        cutoff: Option<String>,
    },
    /// A window and its totals.
    Show {
        #[arg(long)]
        date: String,
    },
    /// A window's lines: one per merchant or biller.
    Payouts {
        #[arg(long)]
        date: String,
    },
}

#[derive(clap::Args)]
pub struct ReconArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ReconCommand,
}

#[derive(clap::Subcommand)]
enum ReconCommand {
    /// The files of a bank (statements, payout files), as the bank sees them.
    Files {
        #[arg(long)]
        bank: String,
        /// Only this business day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<String>,
    },
    /// Pull a file as the bank does: its bytes to --out, the SHA-256 checked.
    Pull {
        #[arg(long)]
        bank: String,
        #[arg(long)]
        date: String,
        /// camt053, camt054, mt940, csv or payout_csv.
        #[arg(long)]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a bank's statement (camt.053, camt.054, MT940 or paymesh's statement CSV; the
    /// format is recognised) and match it.
    Import {
        #[arg(long)]
        bank: String,
        #[arg(long)]
        file: PathBuf,
        /// Match and answer; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A run's lines and the bookings it left unmatched.
    Items {
        #[arg(long)]
        run: String,
        /// Only this outcome (matched, missing_in_ledger, missing_in_bank, amount_mismatch,
        /// duplicate).
        #[arg(long)]
        outcome: Option<String>,
    },
    /// Open breaks of a run (or of a bank).
    Exceptions {
        #[arg(long, required_unless_present = "bank")]
        run: Option<String>,
        #[arg(long)]
        bank: Option<String>,
        /// Also the resolved ones.
        #[arg(long)]
        all: bool,
    },
    /// Resolve a break: adjust (post an adjustment), create-payment (notify the credit from
    /// the bank line; --account names the credited virtual account) or investigated.
    Resolve {
        #[arg(long)]
        exception: String,
        #[arg(long)]
        action: String,
        /// What was found, or why (required).
        #[arg(long)]
        note: String,
        #[arg(long)]
        account: Option<String>,
    },
}

fn client(cfg: &Config, addr: Option<&str>, token: &str) -> anyhow::Result<Client> {
    let addr = match addr {
        Some(a) => a.to_owned(),
        None => cfg.service("settlement")?.addr("listen")?.to_string(),
    };
    Ok(SettlementServiceClient::with_interceptor(
        channel(&addr)?,
        CallContext::with_token(token)?,
    ))
}

fn cutoff(text: &str) -> anyhow::Result<prost_types::Timestamp> {
    if text == "now" {
        return Ok(paymesh_platform::time::timestamp_from_ns(
            paymesh_platform::time::now_ns(),
        ));
    }
    text.parse::<prost_types::Timestamp>()
        .map_err(|e| anyhow::anyhow!("--cutoff {text:?}: `now` or RFC 3339 ({e})"))
}

fn file_format(text: &str) -> anyhow::Result<pb::FileFormat> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    pb::FileFormat::from_str_name(&format!("FILE_FORMAT_{upper}"))
        .filter(|f| *f != pb::FileFormat::Unspecified)
        .with_context(|| format!("--format {text:?}: camt053, camt054, mt940, csv or payout_csv"))
}

fn outcome(text: &str) -> anyhow::Result<pb::Outcome> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    pb::Outcome::from_str_name(&format!("OUTCOME_{upper}"))
        .filter(|o| *o != pb::Outcome::Unspecified)
        .with_context(|| format!("--outcome {text:?}: matched, missing_in_ledger, missing_in_bank, amount_mismatch or duplicate"))
}

fn resolution(text: &str) -> anyhow::Result<pb::Resolution> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    pb::Resolution::from_str_name(&format!("RESOLUTION_{upper}"))
        .filter(|r| {
            matches!(
                r,
                pb::Resolution::Adjust
                    | pb::Resolution::CreatePayment
                    | pb::Resolution::Investigated
            )
        })
        .with_context(|| format!("--action {text:?}: adjust, create-payment or investigated"))
}

pub async fn run_settlement(args: SettlementArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let caller = operator(args.common.operator.as_deref())?;
    let token = token(cfg, args.common.token.as_deref(), &caller)?;
    let mut c = client(cfg, args.common.addr.as_deref(), &token)?;
    let result = match args.command {
        SettlementCommand::Close { date, cutoff: at } => {
            let cutoff_time = at.as_deref().map(cutoff).transpose()?;
            c.close_window(pb::CloseWindowRequest {
                business_date: date,
                cutoff_time,
            })
            .await
            .map(|r| {
                r.into_inner()
                    .window
                    .as_ref()
                    .map_or(Value::Null, json::window)
            })
        }
        SettlementCommand::Show { date } => c
            .get_window(pb::GetWindowRequest {
                business_date: date,
            })
            .await
            .map(|r| {
                r.into_inner()
                    .window
                    .as_ref()
                    .map_or(Value::Null, json::window)
            }),
        SettlementCommand::Payouts { date } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                match c
                    .list_payouts(pb::ListPayoutsRequest {
                        business_date: date.clone(),
                        page_size: 1000,
                        page_token,
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        all.extend(r.payouts.iter().map(json::payout));
                        if r.next_page_token.is_empty() {
                            break Ok(json!({ "business_date": date, "payouts": all }));
                        }
                        page_token = r.next_page_token;
                    }
                    Err(e) => break Err(e),
                }
            }
        }
    };
    finish(result)
}

pub async fn run_recon(args: ReconArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let caller = match &args.command {
        ReconCommand::Pull { bank, .. } => principal("bank", bank, "--bank")?,
        _ => operator(args.common.operator.as_deref())?,
    };
    let token = token(cfg, args.common.token.as_deref(), &caller)?;
    let mut c = client(cfg, args.common.addr.as_deref(), &token)?;
    let result = match args.command {
        ReconCommand::Files { bank, date } => c
            .list_recon_files(pb::ListReconFilesRequest {
                bank_bin: bank,
                business_date: date.unwrap_or_default(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map(|r| json!({ "files": r.into_inner().files.iter().map(json::file).collect::<Vec<_>>() })),
        ReconCommand::Pull {
            bank,
            date,
            format,
            out,
        } => pull(&mut c, &caller, bank, date, file_format(&format)?, &out).await?,
        ReconCommand::Import {
            bank,
            file,
            dry_run,
        } => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut messages = vec![pb::ImportStatementRequest {
                part: Some(pb::import_statement_request::Part::Header(pb::ImportHeader {
                    bank_bin: bank,
                    dry_run,
                    file_name: file
                        .file_name()
                        .map(|n| n.to_string_lossy().chars().take(200).collect())
                        .unwrap_or_default(),
                    ..Default::default()
                })),
            }];
            messages.extend(bytes.chunks(CHUNK_BYTES).map(|chunk| pb::ImportStatementRequest {
                part: Some(pb::import_statement_request::Part::Chunk(chunk.to_vec())),
            }));
            c.import_statement(tokio_stream::iter(messages))
                .await
                .map(|r| r.into_inner().run.as_ref().map_or(Value::Null, json::run))
        }
        ReconCommand::Items { run, outcome: o } => {
            let o = o.as_deref().map(outcome).transpose()?.unwrap_or_default();
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                match c
                    .list_recon_items(pb::ListReconItemsRequest {
                        run_id: run.clone(),
                        outcome: o as i32,
                        page_size: 1000,
                        page_token,
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        all.extend(r.items.iter().map(json::item));
                        if r.next_page_token.is_empty() {
                            break Ok(json!({ "run_id": run, "items": all }));
                        }
                        page_token = r.next_page_token;
                    }
                    Err(e) => break Err(e),
                }
            }
        }
        ReconCommand::Exceptions { run, bank, all } => c
            .list_recon_exceptions(pb::ListReconExceptionsRequest {
                run_id: run.unwrap_or_default(),
                bank_bin: bank.unwrap_or_default(),
                include_resolved: all,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map(|r| {
                json!({ "exceptions": r.into_inner().exceptions.iter().map(json::exception).collect::<Vec<_>>() })
            }),
        ReconCommand::Resolve {
            exception,
            action,
            note,
            account,
        } => c
            .resolve_recon_exception(pb::ResolveReconExceptionRequest {
                exception_id: exception,
                resolution: resolution(&action)? as i32,
                note,
                account_number: account.unwrap_or_default(),
            })
            .await
            .map(|r| r.into_inner().exception.as_ref().map_or(Value::Null, json::exception)),
    };
    finish(result)
}

/// Streams a file to `out`, checks its SHA-256 against the one the service sent first, and
/// answers what was written.
async fn pull(
    c: &mut Client,
    caller: &Principal,
    bank: String,
    date: String,
    format: pb::FileFormat,
    out: &std::path::Path,
) -> anyhow::Result<Result<Value, tonic::Status>> {
    let mut stream = match c
        .get_recon_file(pb::GetReconFileRequest {
            bank_bin: bank,
            business_date: date,
            format: format as i32,
            ..Default::default()
        })
        .await
    {
        Ok(s) => s.into_inner(),
        Err(e) => return Ok(Err(e)),
    };
    let partial = out.with_extension("partial");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut sha = Sha256::new();
    let mut meta = None;
    let mut size = 0usize;
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                if let Some(f) = m.file {
                    meta = Some(f);
                }
                sha.update(&m.chunk);
                size += m.chunk.len();
                file.write_all(&m.chunk)?;
            }
            Ok(None) => break,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Ok(Err(e));
            }
        }
    }
    file.sync_all()?;
    let meta = meta.context("the service sent no file header")?;
    let digest = paymesh_platform::hex(&sha.finalize());
    if digest != meta.sha256 {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!(
            "the bytes received hash to {digest}, not the {} the service sent: nothing written",
            meta.sha256
        );
    }
    std::fs::rename(&partial, out)?;
    let mut answer = json::file(&meta);
    answer["path"] = json!(out.display().to_string());
    answer["bytes_written"] = json!(size);
    answer["pulled_as"] = json!(caller.to_string());
    Ok(Ok(answer))
}
