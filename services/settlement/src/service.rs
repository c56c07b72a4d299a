//! The gRPC surface, `paymesh.settlement.v1.SettlementService`, its description for the
//! platform's service kit ([`SERVICE`]), and the scheduled job that closes windows.

use std::sync::Arc;

use futures::future::BoxFuture;
use paymesh_ledger::chart::SystemAccount;
use paymesh_ledger::client::LedgerClient;
use paymesh_ledger::client::chain::{self, leg, system_accounts};
use paymesh_merchant::client::MerchantClient;
use paymesh_money::Id128;
use paymesh_payment::client::PaymentClient;
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::config::Section;
use paymesh_platform::edge::answer;
use paymesh_platform::edge::fields::{bin_field, text_field, uuid_field};
use paymesh_platform::edge::{PageLimits, Paging, Violations, cursor_i64, i64_cursor};
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_platform::time::{Date, now_ns, timestamp_from_ns};
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::payment::v1 as ppb;
use paymesh_proto::settlement::v1 as pb;
use paymesh_proto::settlement::v1::settlement_service_server::{self, SettlementServiceServer};
use sqlx::PgPool;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::close::{self, Peers};
use crate::files::CHUNK_BYTES;
use crate::internal;
use crate::settings::{self, Settings};
use crate::store::{self, Direction, ExceptionRow, FileRow, PayoutRow, RunItem, RunRow, WindowRow};

/// The settlement service as the service kit starts it.
pub struct Settlement;

/// The settlement service's description: list it where the binary lists its services.
pub static SERVICE: Settlement = Settlement;

/// Operators and paymesh services.
const INTERNAL: Callers = Callers::INTERNAL;
/// A bank reads its own files and statements (handlers check the BIN).
const BANK_READERS: Callers = Callers::INTERNAL.or(Callers::BANK);

pub const RPCS: &[Rpc] = &[
    // Idempotent by the business date: closing again answers the window.
    Rpc::write(
        "CloseWindow",
        Callers::OPERATOR.or(Callers::services(&["settlement"])),
        KeyRule::Optional,
    ),
    Rpc::read("GetWindow", INTERNAL),
    Rpc::read("ListWindows", INTERNAL),
    Rpc::read("ListPayouts", INTERNAL),
    Rpc::read("ListReconFiles", BANK_READERS),
    Rpc::read("GetReconFile", BANK_READERS),
    // Repeatable by its lines' keys: importing the same lines again changes nothing.
    Rpc::write(
        "ImportStatement",
        Callers::OPERATOR.or(Callers::BANK),
        KeyRule::Optional,
    )
    .streamed(),
    Rpc::read("GetReconRun", BANK_READERS),
    Rpc::read("ListReconItems", BANK_READERS),
    Rpc::read("ListReconExceptions", BANK_READERS),
    // Idempotent by the exception's state: resolving it again the same way answers it.
    Rpc::write(
        "ResolveReconException",
        Callers::OPERATOR,
        KeyRule::Optional,
    ),
];

const PAGE: PageLimits = PageLimits {
    size_default: 100,
    size_max: 1000,
};

impl ServiceDef for Settlement {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <SettlementServiceServer<SettlementService> as tonic::server::NamedService>::NAME
    }

    fn rpcs(&self) -> &'static [Rpc] {
        RPCS
    }

    fn config(&self) -> Section {
        settings::SECTION
    }

    fn migrations(&self) -> Vec<Migration> {
        store::migrations()
    }

    fn start<'a>(&'a self, ctx: StartContext<'a>) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let settings = Settings::from_section(ctx.section)?;
            let minter = ctx.minter()?.clone();
            let peers = Peers {
                ledger: LedgerClient::new(&ctx.peer("ledger")?, minter.clone(), "settlement")?
                    .with_timeout(std::time::Duration::from_secs(60)),
                merchants: MerchantClient::new(
                    &ctx.peer("merchant")?,
                    minter.clone(),
                    "settlement",
                )?,
                payments: PaymentClient::new(&ctx.peer("payment")?, minter, "settlement")?,
            };
            let service = SettlementService {
                inner: Arc::new(Inner {
                    pool: ctx.pool.clone(),
                    peers,
                    settings,
                }),
            };
            if let Some(poll) = service.inner.settings.schedule_poll {
                tokio::spawn(schedule(service.clone(), poll, ctx.stopped()));
            }
            let bytes_max = ctx.message_bytes_max();
            let server = SettlementServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max.max(CHUNK_BYTES + 4096));
            Ok(Started::new(server).with_handle(service))
        })
    }
}

/// Closes every window whose cut-off has passed, in date order, until the mesh stops: the
/// first one the latest due day, then each next day. A failure is logged and tried again.
async fn schedule(
    service: SettlementService,
    poll: std::time::Duration,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(poll) => {}
        }
        if let Err(e) = service.close_due().await {
            tracing::warn!(error = %e, "scheduled close failed; trying again later");
        }
    }
}

#[derive(Clone)]
pub struct SettlementService {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    peers: Peers,
    settings: Settings,
}

fn money(amount: i64) -> Option<cpb::Money> {
    Some(chain::vnd(amount))
}

fn date_field(v: &mut Violations, field: &str, text: &str) -> Option<Date> {
    match Date::parse(text) {
        Ok(d) => Some(d),
        Err(e) => {
            v.add(field, e.to_string());
            None
        }
    }
}

/// A bank caller may see only its own BIN's things.
fn may_see(p: &Principal, bin: &str) -> Result<(), ApiError> {
    match p {
        Principal::Bank(own) if own != bin => Err(ApiError::PermissionDenied(format!(
            "bank:{own} may see its own BIN's files and statements only, not {bin}"
        ))),
        _ => Ok(()),
    }
}

fn window_pb(w: &WindowRow, t: &store::Totals) -> pb::Window {
    let status = match w.status.as_str() {
        "CLOSED" => pb::WindowStatus::Closed,
        "SETTLED" => pb::WindowStatus::Settled,
        "FAILED" => pb::WindowStatus::Failed,
        _ => pb::WindowStatus::Open,
    };
    pb::Window {
        business_date: w.business_date.to_string(),
        status: status as i32,
        start_time: Some(timestamp_from_ns(w.start_seq)),
        cutoff_time: Some(timestamp_from_ns(w.cutoff_seq)),
        close_time: Some(timestamp_from_ns(w.close_ns)),
        settle_time: w.settle_ns.map(timestamp_from_ns),
        closed_by: w.closed_by.clone(),
        failure_reason: w.failure_reason.clone(),
        gross: money(t.gross),
        fees: money(t.fees),
        refunds: money(t.refunds),
        net: money(t.net),
        paid_out: money(t.paid_out),
        payout_count: t.payouts,
        line_count: t.lines,
    }
}

fn payout_pb(p: &PayoutRow) -> pb::Payout {
    let status = match p.status.as_str() {
        "POSTED" => pb::PayoutStatus::Posted,
        "FAILED" => pb::PayoutStatus::Failed,
        "NONE" => pb::PayoutStatus::None,
        _ => pb::PayoutStatus::Unspecified,
    };
    let masked = {
        let n = p.account_number.chars().count();
        let tail: String = p.account_number.chars().skip(n.saturating_sub(4)).collect();
        format!("{}{tail}", "*".repeat(n.saturating_sub(4)))
    };
    pb::Payout {
        id: p.id.to_string(),
        business_date: p.business_date.to_string(),
        merchant_id: p.merchant_id.to_string(),
        biller: p.biller,
        business_name: p.business_name.clone(),
        bank_bin: p.bank_bin.clone(),
        account_number_masked: masked,
        gross: money(p.gross),
        fees: money(p.fees),
        refunds: money(p.refunds),
        adjustments: p.adjustments.to_string(),
        carried_in: p.carried_in.to_string(),
        net: p.net.to_string(),
        payout: money(p.payout),
        carried_out: p.carried_out.to_string(),
        status: status as i32,
        failure_reason: p.failure_reason.clone(),
        transfer_id: p
            .transfer_id
            .map(|t| t.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

pub fn format_from_pb(f: i32) -> Option<&'static str> {
    match pb::FileFormat::try_from(f).ok()? {
        pb::FileFormat::Camt053 => Some("CAMT053"),
        pb::FileFormat::Camt054 => Some("CAMT054"),
        pb::FileFormat::Mt940 => Some("MT940"),
        pb::FileFormat::Csv => Some("CSV"),
        pb::FileFormat::PayoutCsv => Some("PAYOUT_CSV"),
        pb::FileFormat::Unspecified => None,
    }
}

fn format_to_pb(f: &str) -> pb::FileFormat {
    match f {
        "CAMT053" => pb::FileFormat::Camt053,
        "CAMT054" => pb::FileFormat::Camt054,
        "MT940" => pb::FileFormat::Mt940,
        "CSV" => pb::FileFormat::Csv,
        "PAYOUT_CSV" => pb::FileFormat::PayoutCsv,
        _ => pb::FileFormat::Unspecified,
    }
}

fn file_pb(f: &FileRow) -> pb::ReconFile {
    pb::ReconFile {
        id: f.id.to_string(),
        bank_bin: f.bank_bin.clone(),
        business_date: f.business_date.to_string(),
        format: format_to_pb(&f.format) as i32,
        file_name: f.file_name.clone(),
        size_bytes: f.size_bytes,
        sha256: f.sha256.clone(),
        entry_count: f.entry_count,
        create_time: Some(timestamp_from_ns(f.create_ns)),
    }
}

pub fn outcome_pb(o: &str) -> pb::Outcome {
    match o {
        "MATCHED" => pb::Outcome::Matched,
        "MISSING_IN_LEDGER" => pb::Outcome::MissingInLedger,
        "MISSING_IN_BANK" => pb::Outcome::MissingInBank,
        "AMOUNT_MISMATCH" => pb::Outcome::AmountMismatch,
        "DUPLICATE" => pb::Outcome::Duplicate,
        _ => pb::Outcome::Unspecified,
    }
}

fn run_pb(r: &RunRow) -> pb::ReconRun {
    pb::ReconRun {
        id: r.id.to_string(),
        bank_bin: r.bank_bin.clone(),
        format: format_to_pb(&r.format) as i32,
        file_name: r.file_name.clone(),
        sha256: r.sha256.clone(),
        dry_run: r.dry_run,
        from_date: r.from_date.map(|d| d.to_string()).unwrap_or_default(),
        to_date: r.to_date.map(|d| d.to_string()).unwrap_or_default(),
        lines: r.lines,
        already_matched: r.already_matched,
        matched: r.matched,
        missing_in_ledger: r.missing_in_ledger,
        missing_in_bank: r.missing_in_bank,
        amount_mismatch: r.amount_mismatch,
        duplicate: r.duplicate,
        breaks_closed: r.breaks_closed,
        created_by: r.created_by.clone(),
        create_time: Some(timestamp_from_ns(r.create_ns)),
    }
}

fn item_pb(i: &RunItem, exception: Option<Uuid>) -> pb::ReconItem {
    pb::ReconItem {
        side: if i.side == "BOOK" {
            pb::ItemSide::Book
        } else {
            pb::ItemSide::Bank
        } as i32,
        line: i.line,
        outcome: outcome_pb(i.outcome) as i32,
        amount: money(i.amount),
        direction: i.direction.as_str().to_owned(),
        value_date: i.value_date.to_string(),
        bank_reference: i.bank_reference.clone(),
        end_to_end_id: i.end_to_end_id.clone(),
        description: i.description.clone(),
        booking_ids: i.booking_ids.iter().map(Uuid::to_string).collect(),
        note: i.note.clone(),
        exception_id: exception.map(|e| e.to_string()).unwrap_or_default(),
    }
}

fn resolution_pb(r: &str) -> pb::Resolution {
    match r {
        "ADJUST" => pb::Resolution::Adjust,
        "CREATE_PAYMENT" => pb::Resolution::CreatePayment,
        "INVESTIGATED" => pb::Resolution::Investigated,
        "MATCHED_LATER" => pb::Resolution::MatchedLater,
        _ => pb::Resolution::Unspecified,
    }
}

fn exception_pb(e: &ExceptionRow) -> pb::ReconException {
    pb::ReconException {
        id: e.id.to_string(),
        bank_bin: e.bank_bin.clone(),
        run_id: e.run_id.to_string(),
        kind: outcome_pb(&e.kind) as i32,
        item: Some(item_pb(&e.item, Some(e.id))),
        status: if e.status == "OPEN" {
            pb::ExceptionStatus::Open
        } else {
            pb::ExceptionStatus::Resolved
        } as i32,
        resolution: resolution_pb(&e.resolution) as i32,
        note: e.resolution_note.clone(),
        resolved_by: e.resolved_by.clone(),
        create_time: Some(timestamp_from_ns(e.create_ns)),
        resolve_time: e.resolve_ns.map(timestamp_from_ns),
        resolution_reference: e.resolution_reference.clone(),
    }
}

/// The longest note an operator writes on a resolution.
const NOTE_CHARS_MAX: usize = 500;

impl SettlementService {
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Closes the windows whose cut-off has passed (the scheduled job's step).
    pub async fn close_due(&self) -> Result<(), ApiError> {
        let s = &self.inner.settings;
        let due = close::latest_due(s, now_ns());
        let mut next = match store::latest_window(self.pool()).await.map_err(internal)? {
            None => due,
            Some(w) if w.status != "SETTLED" => w.business_date,
            Some(w) => w.business_date.plus_days(1),
        };
        while next <= due {
            let w = close::close(
                self.pool(),
                &self.inner.peers,
                s,
                next,
                None,
                "service:settlement",
            )
            .await?;
            if w.status != "SETTLED" {
                break;
            }
            next = next.plus_days(1);
        }
        Ok(())
    }

    async fn window_answer(&self, w: &WindowRow) -> Result<pb::Window, ApiError> {
        let totals = store::totals(self.pool(), w.business_date)
            .await
            .map_err(internal)?;
        Ok(window_pb(w, &totals))
    }

    async fn close_window(
        &self,
        request: Request<pb::CloseWindowRequest>,
    ) -> Result<pb::CloseWindowResponse, ApiError> {
        let caller = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let date = date_field(&mut v, "business_date", &req.business_date);
        let early = match &req.cutoff_time {
            None => None,
            Some(t) => match paymesh_platform::time::ns_from_timestamp(t) {
                Ok(ns) => Some(ns),
                Err(why) => {
                    v.add("cutoff_time", why);
                    None
                }
            },
        };
        v.into_result()?;
        let Some(date) = date else {
            return Err(ApiError::invalid("business_date", "required"));
        };
        // A close runs to its end even when its caller gives up (a deadline shorter than a
        // busy day's close): asking again then answers the window, or waits for the lock.
        let service = self.clone();
        let w = tokio::spawn(async move {
            close::close(
                service.pool(),
                &service.inner.peers,
                &service.inner.settings,
                date,
                early,
                &caller,
            )
            .await
        })
        .await
        .map_err(internal)??;
        Ok(pb::CloseWindowResponse {
            window: Some(self.window_answer(&w).await?),
        })
    }

    async fn get_window(
        &self,
        request: Request<pb::GetWindowRequest>,
    ) -> Result<pb::GetWindowResponse, ApiError> {
        let mut v = Violations::default();
        let date = date_field(&mut v, "business_date", &request.get_ref().business_date);
        v.into_result()?;
        let Some(date) = date else {
            return Err(ApiError::invalid("business_date", "required"));
        };
        match store::window(self.pool(), date).await.map_err(internal)? {
            Some(w) => Ok(pb::GetWindowResponse {
                window: Some(self.window_answer(&w).await?),
            }),
            // A day not closed yet is OPEN.
            None => Ok(pb::GetWindowResponse {
                window: Some(pb::Window {
                    business_date: date.to_string(),
                    status: pb::WindowStatus::Open as i32,
                    cutoff_time: Some(timestamp_from_ns(close::cutoff_ns(
                        &self.inner.settings,
                        date,
                    ))),
                    ..Default::default()
                }),
            }),
        }
    }

    async fn list_windows(
        &self,
        request: Request<pb::ListWindowsRequest>,
    ) -> Result<pb::ListWindowsResponse, ApiError> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let paging = Paging::parse(
            &mut v,
            "settlement.windows",
            &[],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let before = paging
            .after()
            .and_then(cursor_i64)
            .and_then(|d| i32::try_from(d).ok());
        let rows = store::windows(self.pool(), before, paging.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) =
            paging.finish(rows, |w| i64_cursor(i64::from(w.business_date.days())));
        let mut windows = Vec::with_capacity(rows.len());
        for w in &rows {
            windows.push(self.window_answer(w).await?);
        }
        Ok(pb::ListWindowsResponse {
            windows,
            next_page_token,
        })
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<pb::ListPayoutsResponse, ApiError> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let date = date_field(&mut v, "business_date", &req.business_date);
        let day = date.map(|d| d.days().to_be_bytes()).unwrap_or_default();
        let paging = Paging::parse(
            &mut v,
            "settlement.payouts",
            &[&day],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let Some(date) = date else {
            return Err(ApiError::invalid("business_date", "required"));
        };
        let after = paging.after().and_then(|c| Uuid::from_slice(c).ok());
        let rows = store::payouts(self.pool(), date, None, after, paging.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = paging.finish(rows, |p| p.id.as_bytes().to_vec());
        Ok(pb::ListPayoutsResponse {
            payouts: rows.iter().map(payout_pb).collect(),
            next_page_token,
        })
    }

    async fn list_files(
        &self,
        request: Request<pb::ListReconFilesRequest>,
    ) -> Result<pb::ListReconFilesResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let bin = match (&caller, req.bank_bin.as_str()) {
            (Principal::Bank(own), "") => Some(own.clone()),
            (_, "") => None,
            (_, b) => bin_field(&mut v, "bank_bin", b),
        };
        let date = (!req.business_date.is_empty())
            .then(|| date_field(&mut v, "business_date", &req.business_date))
            .flatten();
        let filters = [
            bin.clone().unwrap_or_default().into_bytes(),
            date.map(|d| d.days().to_be_bytes().to_vec())
                .unwrap_or_default(),
        ];
        let filter_refs: Vec<&[u8]> = filters.iter().map(Vec::as_slice).collect();
        let paging = Paging::parse(
            &mut v,
            "settlement.files",
            &filter_refs,
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        if let Some(b) = &bin {
            may_see(&caller, b)?;
        }
        let after = paging.after().and_then(|c| {
            let text = std::str::from_utf8(c).ok()?;
            let mut parts = text.splitn(3, '|');
            Some((
                parts.next()?.parse::<i32>().ok()?,
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        });
        let rows = store::files(
            self.pool(),
            bin.as_deref(),
            date,
            after,
            paging.fetch_limit(),
        )
        .await
        .map_err(internal)?;
        let (rows, next_page_token) = paging.finish(rows, |f| {
            format!("{}|{}|{}", f.business_date.days(), f.bank_bin, f.format).into_bytes()
        });
        Ok(pb::ListReconFilesResponse {
            files: rows.iter().map(file_pb).collect(),
            next_page_token,
        })
    }

    async fn find_file(
        &self,
        request: &Request<pb::GetReconFileRequest>,
    ) -> Result<FileRow, ApiError> {
        let caller = principal(request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let file = if req.file_id.is_empty() {
            let bin = bin_field(&mut v, "bank_bin", &req.bank_bin);
            let date = date_field(&mut v, "business_date", &req.business_date);
            let format = format_from_pb(req.format);
            if format.is_none() {
                v.add("format", "required with bank_bin and business_date");
            }
            v.into_result()?;
            let (Some(bin), Some(date), Some(format)) = (bin, date, format) else {
                return Err(ApiError::invalid("file_id", "required"));
            };
            may_see(caller, &bin)?;
            store::file_by_day(self.pool(), &bin, date, format)
                .await
                .map_err(internal)?
        } else {
            let id = uuid_field(&mut v, "file_id", &req.file_id);
            v.into_result()?;
            let Some(id) = id else {
                return Err(ApiError::invalid("file_id", "required"));
            };
            store::file(self.pool(), id).await.map_err(internal)?
        };
        let file = file.ok_or(ApiError::NotFound {
            resource: "reconciliation file",
        })?;
        // Another bank's file is as good as absent, whichever way it was asked for.
        if let Principal::Bank(own) = caller
            && *own != file.bank_bin
        {
            return Err(ApiError::NotFound {
                resource: "reconciliation file",
            });
        }
        Ok(file)
    }

    async fn import_statement(
        &self,
        request: Request<Streaming<pb::ImportStatementRequest>>,
    ) -> Result<pb::ImportStatementResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let mut stream = request.into_inner();
        let broken = |s: Status| {
            ApiError::invalid("request", format!("the stream broke off: {}", s.message()))
        };
        let header = match stream.message().await.map_err(broken)? {
            Some(pb::ImportStatementRequest {
                part: Some(pb::import_statement_request::Part::Header(h)),
            }) => h,
            _ => {
                return Err(ApiError::invalid(
                    "header",
                    "the first message must be the header",
                ));
            }
        };
        let mut v = Violations::default();
        let bin = bin_field(&mut v, "header.bank_bin", &header.bank_bin);
        let file_name = text_field(&mut v, "header.file_name", &header.file_name, 200);
        let format = match pb::FileFormat::try_from(header.format) {
            Ok(pb::FileFormat::Unspecified) => None,
            Ok(pb::FileFormat::Camt053) => Some(paymesh_formats::Format::Camt053),
            Ok(pb::FileFormat::Camt054) => Some(paymesh_formats::Format::Camt054),
            Ok(pb::FileFormat::Mt940) => Some(paymesh_formats::Format::Mt940),
            Ok(pb::FileFormat::Csv) => Some(paymesh_formats::Format::Csv),
            _ => {
                v.add(
                    "header.format",
                    "a bank statement is CAMT053, CAMT054, MT940 or CSV",
                );
                None
            }
        };
        v.into_result()?;
        let Some(bin) = bin else {
            return Err(ApiError::invalid("header.bank_bin", "required"));
        };
        may_see(&caller, &bin)?;
        let limit = self.inner.settings.statement_bytes_max;
        let mut bytes = Vec::new();
        while let Some(m) = stream.message().await.map_err(broken)? {
            let chunk = match m.part {
                Some(pb::import_statement_request::Part::Chunk(c)) => c,
                _ => {
                    return Err(ApiError::invalid(
                        "header",
                        "only the first message is a header",
                    ));
                }
            };
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge(format!(
                    "the statement is larger than settlement.statement_bytes_max ({limit} bytes)"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let run = crate::import::import(
            self.pool(),
            crate::import::Statement {
                bank_bin: bin,
                format,
                dry_run: header.dry_run,
                file_name: file_name.unwrap_or_default(),
                bytes,
                actor: caller.to_string(),
            },
        )
        .await?;
        tracing::info!(run = %run.id, bank = %run.bank_bin, lines = run.lines, matched = run.matched,
            missing_in_ledger = run.missing_in_ledger, missing_in_bank = run.missing_in_bank,
            amount_mismatch = run.amount_mismatch, duplicate = run.duplicate, dry_run = run.dry_run,
            "statement imported");
        Ok(pb::ImportStatementResponse {
            run: Some(run_pb(&run)),
        })
    }

    async fn run_of(&self, request_run: &str, caller: &Principal) -> Result<RunRow, ApiError> {
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "run_id", request_run);
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("run_id", "required"));
        };
        let run = store::run(self.pool(), id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound { resource: "run" })?;
        if let Principal::Bank(own) = caller
            && *own != run.bank_bin
        {
            return Err(ApiError::NotFound { resource: "run" });
        }
        Ok(run)
    }

    async fn get_run(
        &self,
        request: Request<pb::GetReconRunRequest>,
    ) -> Result<pb::GetReconRunResponse, ApiError> {
        let caller = principal(&request)?;
        let run = self.run_of(&request.get_ref().run_id, caller).await?;
        Ok(pb::GetReconRunResponse {
            run: Some(run_pb(&run)),
        })
    }

    async fn list_items(
        &self,
        request: Request<pb::ListReconItemsRequest>,
    ) -> Result<pb::ListReconItemsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let run = self.run_of(&req.run_id, caller).await?;
        let outcome = match pb::Outcome::try_from(req.outcome) {
            Ok(pb::Outcome::Unspecified) | Err(_) => None,
            Ok(o) => Some(o.as_str_name().trim_start_matches("OUTCOME_")),
        };
        let mut v = Violations::default();
        let paging = Paging::parse(
            &mut v,
            "settlement.run_items",
            &[run.id.as_bytes(), outcome.unwrap_or("").as_bytes()],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let after = paging
            .after()
            .and_then(cursor_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(-1);
        let rows = store::run_items(self.pool(), run.id, outcome, after, paging.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = paging.finish(rows, |i| i64_cursor(i64::from(i.n)));
        Ok(pb::ListReconItemsResponse {
            items: rows
                .iter()
                .map(|i| item_pb(&i.item, i.exception_id))
                .collect(),
            next_page_token,
        })
    }

    async fn list_exceptions(
        &self,
        request: Request<pb::ListReconExceptionsRequest>,
    ) -> Result<pb::ListReconExceptionsResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let run = (!req.run_id.is_empty())
            .then(|| uuid_field(&mut v, "run_id", &req.run_id))
            .flatten();
        let bin = (!req.bank_bin.is_empty())
            .then(|| bin_field(&mut v, "bank_bin", &req.bank_bin))
            .flatten();
        let paging = Paging::parse(
            &mut v,
            "settlement.exceptions",
            &[
                req.run_id.as_bytes(),
                req.bank_bin.as_bytes(),
                &[u8::from(req.include_resolved)],
            ],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        // A bank sees its own; its run or BIN is checked, and without either it is its BIN.
        let bin = match (&caller, bin) {
            (Principal::Bank(own), None) => Some(own.clone()),
            (_, b) => b,
        };
        if let Some(b) = &bin {
            may_see(&caller, b)?;
        }
        if let Some(r) = run {
            self.run_of(&r.to_string(), &caller).await?;
        }
        let after = paging.after().and_then(|c| {
            let (t, id) = c.split_at_checked(8)?;
            Some((
                i64::from_be_bytes(t.try_into().ok()?),
                Uuid::from_slice(id).ok()?,
            ))
        });
        let rows = store::exceptions(
            self.pool(),
            run,
            bin.as_deref(),
            req.include_resolved,
            after,
            paging.fetch_limit(),
        )
        .await
        .map_err(internal)?;
        let (rows, next_page_token) = paging.finish(rows, |e| {
            let mut c = e.create_ns.to_be_bytes().to_vec();
            c.extend_from_slice(e.id.as_bytes());
            c
        });
        Ok(pb::ListReconExceptionsResponse {
            exceptions: rows.iter().map(exception_pb).collect(),
            next_page_token,
        })
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveReconExceptionRequest>,
    ) -> Result<pb::ResolveReconExceptionResponse, ApiError> {
        let caller = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "exception_id", &req.exception_id);
        let note = text_field(&mut v, "note", &req.note, NOTE_CHARS_MAX);
        if req.note.trim().is_empty() {
            v.add("note", "required: what was found, or why");
        }
        let resolution = match pb::Resolution::try_from(req.resolution) {
            Ok(
                r @ (pb::Resolution::Adjust
                | pb::Resolution::CreatePayment
                | pb::Resolution::Investigated),
            ) => Some(r),
            _ => {
                v.add("resolution", "ADJUST, CREATE_PAYMENT or INVESTIGATED");
                None
            }
        };
        let account = req.account_number.trim();
        if resolution == Some(pb::Resolution::CreatePayment)
            && (account.is_empty()
                || account.len() > 19
                || !account.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            v.add(
                "account_number",
                "required for CREATE_PAYMENT: the virtual account the bank credited (1-19 letters and digits)",
            );
        }
        v.into_result()?;
        let (Some(id), Some(note), Some(resolution)) = (id, note, resolution) else {
            return Err(ApiError::invalid("exception_id", "required"));
        };
        let name = resolution.as_str_name().trim_start_matches("RESOLUTION_");
        let mut tx = self.pool().begin().await.map_err(internal)?;
        let e = store::exception_locked(&mut tx, id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound {
                resource: "exception",
            })?;
        if e.status != "OPEN" {
            if e.resolution == name {
                return Ok(pb::ResolveReconExceptionResponse {
                    exception: Some(exception_pb(&e)),
                });
            }
            return Err(ApiError::FailedPrecondition {
                reason: "EXCEPTION_RESOLVED",
                message: format!(
                    "exception {id} was resolved already ({} by {})",
                    e.resolution, e.resolved_by
                ),
            });
        }
        let reference = match resolution {
            pb::Resolution::Adjust => self.adjust(&e).await?,
            pb::Resolution::CreatePayment => self.create_payment(&e, account).await?,
            _ => String::new(),
        };
        // The adjustment is itself a movement at the bank's account: settled with the break, so
        // the next statement does not report it missing.
        let adjustment = (resolution == pb::Resolution::Adjust)
            .then(|| Uuid::try_parse(&reference).ok())
            .flatten();
        store::resolve_exception(&mut tx, &e, name, &note, &reference, &caller, adjustment)
            .await
            .map_err(internal)?;
        let resolved = store::exception_locked(&mut tx, id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound {
                resource: "exception",
            })?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(exception = %id, resolution = name, actor = %caller, "exception resolved");
        Ok(pb::ResolveReconExceptionResponse {
            exception: Some(exception_pb(&resolved)),
        })
    }

    /// The difference between the bank and paymesh for a break, signed from paymesh's
    /// account at the bank (in +): what the ledger is short of the bank. A line missing in the
    /// ledger (or booked twice by the bank): the line; a booking missing in the bank: minus the
    /// booking; an amount mismatch: the line less what its bookings say.
    async fn difference(&self, e: &ExceptionRow) -> Result<i64, ApiError> {
        let item = e.item.direction.signed(e.item.amount);
        Ok(match e.kind.as_str() {
            "MISSING_IN_BANK" => -item,
            "AMOUNT_MISMATCH" => {
                let booked = store::bookings_signed_sum(self.pool(), &e.item.booking_ids)
                    .await
                    .map_err(internal)?;
                item - booked
            }
            _ => item,
        })
    }

    /// Posts the ADJUSTMENT that makes the ledger's position with the bank agree with the
    /// bank's: between the bank's clearing account and suspense. Its id is derived from the
    /// exception, so a retry posts it once.
    async fn adjust(&self, e: &ExceptionRow) -> Result<String, ApiError> {
        let delta = self.difference(e).await?;
        if delta == 0 {
            return Ok(String::new());
        }
        let bin = e.bank_bin.as_str();
        let clearing = SystemAccount::BankClearing { bin };
        let ledger = &self.inner.peers.ledger;
        ledger
            .open_accounts(&system_accounts(&[clearing, SystemAccount::Suspense])?)
            .await?;
        let (debit, credit) = if delta > 0 {
            (
                chain::system(clearing)?,
                chain::system(SystemAccount::Suspense)?,
            )
        } else {
            (
                chain::system(SystemAccount::Suspense)?,
                chain::system(clearing)?,
            )
        };
        let id: Id128 = chain::transfer_id("paymesh.settlement.adjustment.v1", e.id, "adjust")?;
        let results = ledger
            .create_transfers(vec![leg(
                id,
                debit,
                credit,
                delta.abs(),
                lpb::TransferCode::Adjustment,
                &e.id,
            )])
            .await?;
        match results.first() {
            Some(lpb::CreateTransferResult::Ok | lpb::CreateTransferResult::Exists) => {
                Ok(id.to_uuid().to_string())
            }
            other => Err(ApiError::FailedPrecondition {
                reason: "ADJUSTMENT_REFUSED",
                message: format!("the ledger refused the adjustment: {other:?}"),
            }),
        }
    }

    /// Notifies the payment service of a bank credit it never had, from the line.
    async fn create_payment(&self, e: &ExceptionRow, account: &str) -> Result<String, ApiError> {
        if e.kind != "MISSING_IN_LEDGER" || e.item.direction != Direction::Credit {
            return Err(ApiError::FailedPrecondition {
                reason: "NOT_A_MISSING_CREDIT",
                message: "only a bank credit missing in the ledger can become a payment".into(),
            });
        }
        if e.item.bank_reference.is_empty() {
            return Err(ApiError::FailedPrecondition {
                reason: "NO_BANK_TRANSACTION_ID",
                message: "the line has no bank transaction id to notify the credit under".into(),
            });
        }
        let value_ns = e.item.value_date.vietnam_start_unix() * 1_000_000_000;
        let answer = self
            .inner
            .peers
            .payments
            .notify_credit(ppb::NotifyCreditRequest {
                bank_bin: e.bank_bin.clone(),
                bank_transaction_id: e.item.bank_reference.clone(),
                account_number: account.to_owned(),
                amount: money(e.item.amount),
                description: e.item.description.clone(),
                value_time: Some(timestamp_from_ns(value_ns)),
            })
            .await?;
        Ok(answer.credit.map(|c| c.id).unwrap_or_default())
    }
}

type FileStream = ReceiverStream<Result<pb::GetReconFileResponse, Status>>;

#[tonic::async_trait]
impl settlement_service_server::SettlementService for SettlementService {
    async fn close_window(
        &self,
        request: Request<pb::CloseWindowRequest>,
    ) -> Result<Response<pb::CloseWindowResponse>, Status> {
        answer(self.close_window(request).await)
    }

    async fn get_window(
        &self,
        request: Request<pb::GetWindowRequest>,
    ) -> Result<Response<pb::GetWindowResponse>, Status> {
        answer(self.get_window(request).await)
    }

    async fn list_windows(
        &self,
        request: Request<pb::ListWindowsRequest>,
    ) -> Result<Response<pb::ListWindowsResponse>, Status> {
        answer(self.list_windows(request).await)
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        answer(self.list_payouts(request).await)
    }

    async fn list_recon_files(
        &self,
        request: Request<pb::ListReconFilesRequest>,
    ) -> Result<Response<pb::ListReconFilesResponse>, Status> {
        answer(self.list_files(request).await)
    }

    type GetReconFileStream = FileStream;

    async fn get_recon_file(
        &self,
        request: Request<pb::GetReconFileRequest>,
    ) -> Result<Response<FileStream>, Status> {
        let file = self.find_file(&request).await.map_err(Status::from)?;
        if file.renderer != crate::files::RENDERER {
            return Err(ApiError::FailedPrecondition {
                reason: "FILE_RENDERER_CHANGED",
                message: format!(
                    "file {} was written by renderer {}; this service renders {}: it cannot send the same bytes",
                    file.id,
                    file.renderer,
                    crate::files::RENDERER
                ),
            }
            .into());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (pool, settings) = (self.pool().clone(), self.inner.settings.clone());
        tokio::spawn(async move {
            let description = file_pb(&file);
            if let Err(e) =
                crate::files::pull(&pool, &settings, &file, description, tx.clone()).await
            {
                let _ = tx.send(Err(Status::from(ApiError::Internal(e)))).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn import_statement(
        &self,
        request: Request<Streaming<pb::ImportStatementRequest>>,
    ) -> Result<Response<pb::ImportStatementResponse>, Status> {
        answer(self.import_statement(request).await)
    }

    async fn get_recon_run(
        &self,
        request: Request<pb::GetReconRunRequest>,
    ) -> Result<Response<pb::GetReconRunResponse>, Status> {
        answer(self.get_run(request).await)
    }

    async fn list_recon_items(
        &self,
        request: Request<pb::ListReconItemsRequest>,
    ) -> Result<Response<pb::ListReconItemsResponse>, Status> {
        answer(self.list_items(request).await)
    }

    async fn list_recon_exceptions(
        &self,
        request: Request<pb::ListReconExceptionsRequest>,
    ) -> Result<Response<pb::ListReconExceptionsResponse>, Status> {
        answer(self.list_exceptions(request).await)
    }

    async fn resolve_recon_exception(
        &self,
        request: Request<pb::ResolveReconExceptionRequest>,
    ) -> Result<Response<pb::ResolveReconExceptionResponse>, Status> {
        answer(self.resolve(request).await)
    }
}
