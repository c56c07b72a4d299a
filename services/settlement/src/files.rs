//! The files banks pull, written when a window closes: per bank and business day its
//! statement in four formats (camt.053, camt.054, MT940, paymesh's statement CSV), and per
//! settlement bank the payout file.
//!
//! A file is rendered by streaming: the day's bookings are read a page at a time in commit
//! order, each written through the format's writer into a buffer that is cut into 1 MiB
//! chunks as it fills, with the SHA-256 taken over the chunks as they go. Memory stays bounded
//! however large the day. Everything a file says comes from stored rows (bookings, the bank's
//! day, the window's close time), which never change once the window is closed, so rendering
//! it again gives the same bytes (a test renders twice). So only a file's description, size
//! and digest are stored when the window closes; a bank's pull renders it again into the
//! stream, checks the digest, and ends the stream with DATA_LOSS if it ever differed. A day's
//! camt.053 of a million entries is nearly a gigabyte: not storing it saves writing that (and
//! its WAL) at every close.
//!
//! The statement is of paymesh's position with the bank: money in (`CRDT`) is what the bank
//! received for paymesh (its clearing account debited in the ledger), money out (`DBIT`) the
//! payouts and refunds paymesh instructed (its payout account credited). Opening balance =
//! the previous day's closing; closing = opening + credits − debits.
//!
//! # Payout file (`FILE_FORMAT_PAYOUT_CSV`)
//!
//! UTF-8, LF, RFC 4180 quoting, this header, one row per payout posted in the window, then a
//! trailer `TRAILER,{rows},{sum of amount}`:
//!
//! `payout_id,business_date,batch_reference,merchant_id,beneficiary_name,bank_bin,account_number,amount,currency`
//!
//! The bank books the whole file as one debit of the sum with `batch_reference`
//! (`PO{YYYYMMDD}{BIN}`) in its description; reconciliation matches that one line to every
//! payout of the batch.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use paymesh_formats::statement_csv::quote_into;
use paymesh_formats::{Account, Day, Entry, StatementHeader};
use paymesh_platform::time::{Date, rfc3339_from_ns, vietnam_rfc3339_from_ns};
use paymesh_proto::settlement::v1 as pb;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::close::payout_batch;
use crate::settings::Settings;
use crate::store::{self, BankDay, Booking, FileRow, WindowRow};

/// Bytes per stored chunk (and per GetReconFile message).
pub const CHUNK_BYTES: usize = 1 << 20;

/// The version of the rendering the stored digests were taken with. A file is rendered again
/// when a bank pulls it; a change to what the writers write must bump this.
pub const RENDERER: i32 = 1;

/// Bookings read per page while rendering.
const PAGE: i64 = 10_000;

/// The statement formats, by their names on the wire and in storage.
pub const STATEMENT_FORMATS: [&str; 4] = ["CAMT053", "CAMT054", "MT940", "CSV"];
pub const PAYOUT_FORMAT: &str = "PAYOUT_CSV";

pub const PAYOUT_HEADER: &str = "payout_id,business_date,batch_reference,merchant_id,beneficiary_name,bank_bin,account_number,amount,currency";

/// A buffer the writers write into and the renderer drains.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The first `n` bytes (all when `n` is larger), taken out: the buffer itself, the few
    /// bytes past `n` copied into a fresh one (the writer adds one entry at a time).
    fn take(&self, n: usize) -> Vec<u8> {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if n >= buf.len() {
            return std::mem::take(&mut *buf);
        }
        let mut rest = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
        rest.extend_from_slice(&buf[n..]);
        buf.truncate(n);
        std::mem::replace(&mut *buf, rest)
    }
}

/// Where rendered bytes go.
pub enum Out {
    /// Hashed and counted only: a file's digest and size when its window closes.
    Discard,
    /// A bank pulling the file: `GetReconFile` messages of at most [`CHUNK_BYTES`], the first
    /// with the file's description.
    Pull {
        tx: tokio::sync::mpsc::Sender<Result<pb::GetReconFileResponse, tonic::Status>>,
        first: Option<pb::ReconFile>,
    },
    /// Memory (tests).
    Memory(Vec<u8>),
}

/// What was rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub size: i64,
    pub sha256: String,
    pub entries: i64,
}

struct Emitter {
    out: Out,
    sha: Sha256,
    size: i64,
}

impl Emitter {
    async fn emit(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.sha.update(&bytes);
        self.size += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        match &mut self.out {
            Out::Discard => {}
            Out::Pull { tx, first } => {
                let message = pb::GetReconFileResponse {
                    file: first.take(),
                    chunk: bytes,
                };
                tx.send(Ok(message))
                    .await
                    .map_err(|_| anyhow::anyhow!("the bank stopped pulling the file"))?;
            }
            Out::Memory(all) => all.extend_from_slice(&bytes),
        }
        Ok(())
    }

    /// Emits whole chunks while the buffer holds one. Only hashed, the bytes are hashed where
    /// they lie and the buffer is reused.
    async fn drain_full(&mut self, buf: &Shared) -> anyhow::Result<()> {
        if matches!(self.out, Out::Discard) {
            let mut b = buf.0.lock().unwrap_or_else(PoisonError::into_inner);
            if b.len() >= CHUNK_BYTES {
                self.sha.update(&b[..]);
                self.size += i64::try_from(b.len()).unwrap_or(i64::MAX);
                b.clear();
            }
            return Ok(());
        }
        while buf.len() >= CHUNK_BYTES {
            let chunk = buf.take(CHUNK_BYTES);
            self.emit(chunk).await?;
        }
        Ok(())
    }

    async fn finish(mut self, buf: &Shared, entries: i64) -> anyhow::Result<(Rendered, Out)> {
        self.drain_full(buf).await?;
        let rest = buf.take(usize::MAX);
        // An empty file (no message sent yet) still answers its description.
        if rest.is_empty()
            && let Out::Pull { tx, first } = &mut self.out
            && let Some(file) = first.take()
        {
            let message = pb::GetReconFileResponse {
                file: Some(file),
                chunk: Vec::new(),
            };
            tx.send(Ok(message))
                .await
                .map_err(|_| anyhow::anyhow!("the bank stopped pulling the file"))?;
        }
        self.emit(rest).await?;
        let sha = self.sha.finalize();
        let hex = paymesh_platform::hex(&sha);
        Ok((
            Rendered {
                size: self.size,
                sha256: hex,
                entries,
            },
            self.out,
        ))
    }
}

fn day(d: Date) -> Day {
    Day::from_days_since_epoch(d.days())
}

fn compact(d: Date) -> String {
    let (y, m, dd) = d.civil();
    format!("{y:04}{m:02}{dd:02}")
}

/// The statement's header of a bank's day.
fn header(
    settings: &Settings,
    w: &WindowRow,
    bin: &str,
    format: &str,
    d: &BankDay,
) -> StatementHeader {
    let date = w.business_date;
    StatementHeader {
        // MT940's :20: keeps the first 16 characters: the day, the bank and the format are
        // the first 16.
        message_id: format!("{}{bin}{}PAYMESH", compact(date), format_code(format)),
        created: rfc3339_from_ns(w.close_ns),
        statement_id: format!("{bin}-{}", compact(date)),
        sequence_number: u64::try_from(date.days()).unwrap_or(0),
        account: Account {
            number: statement_account(bin),
            currency: "VND".into(),
            owner_name: settings.account_owner.clone(),
            servicer_bin: bin.to_owned(),
        },
        business_date: day(date),
        from_time: vietnam_rfc3339_from_ns(
            w.start_seq
                .max((date.plus_days(-1).vietnam_start_unix()) * 1_000_000_000),
        ),
        to_time: vietnam_rfc3339_from_ns(w.cutoff_seq),
        opening_balance: d.opening,
        closing_balance: d.closing,
        credit_count: u64::try_from(d.credit_count).unwrap_or(0),
        credit_sum: d.credit_sum,
        debit_count: u64::try_from(d.debit_count).unwrap_or(0),
        debit_sum: d.debit_sum,
    }
}

/// Two characters naming a statement format in message ids.
fn format_code(format: &str) -> &'static str {
    match format {
        "CAMT053" => "53",
        "CAMT054" => "54",
        "MT940" => "MT",
        _ => "CS",
    }
}

/// paymesh's account at the bank `bin`, as its statements name it.
pub fn statement_account(bin: &str) -> String {
    format!("PAYMESH{bin}")
}

fn entry(b: Booking, date: Date) -> Entry {
    Entry {
        amount: b.amount,
        direction: b.direction.to_format(),
        booking_date: day(date),
        value_date: day(b.value_date),
        bank_reference: if b.bank_reference.is_empty() {
            b.id.simple().to_string()
        } else {
            b.bank_reference
        },
        end_to_end_id: b.end_to_end_id,
        description: b.description,
        details: Vec::new(),
    }
}

enum AnyWriter {
    Camt053(paymesh_formats::camt::Camt053Writer<Shared>),
    Camt054(paymesh_formats::camt::Camt054Writer<Shared>),
    Mt940(paymesh_formats::mt940::Mt940Writer<Shared>),
    Csv(paymesh_formats::statement_csv::CsvWriter<Shared>),
}

impl AnyWriter {
    fn new(format: &str, out: Shared, h: &StatementHeader) -> anyhow::Result<AnyWriter> {
        use paymesh_formats::{camt, mt940, statement_csv};
        Ok(match format {
            "CAMT053" => AnyWriter::Camt053(camt::Camt053Writer::new(out, h)?),
            "CAMT054" => AnyWriter::Camt054(camt::Camt054Writer::new(out, h)?),
            "MT940" => AnyWriter::Mt940(mt940::Mt940Writer::new(out, h)?),
            "CSV" => AnyWriter::Csv(statement_csv::CsvWriter::new(out, h)?),
            other => anyhow::bail!("no statement format {other}"),
        })
    }

    fn write(&mut self, e: &Entry) -> anyhow::Result<()> {
        match self {
            AnyWriter::Camt053(w) => w.write_entry(e)?,
            AnyWriter::Camt054(w) => w.write_entry(e)?,
            AnyWriter::Mt940(w) => w.write_entry(e)?,
            AnyWriter::Csv(w) => w.write_entry(e)?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            AnyWriter::Camt053(w) => drop(w.finish()?),
            AnyWriter::Camt054(w) => drop(w.finish()?),
            AnyWriter::Mt940(w) => drop(w.finish()?),
            AnyWriter::Csv(w) => drop(w.finish()?),
        }
        Ok(())
    }
}

/// Renders the statement of `bin`'s day in `format` into `out`.
pub async fn render_statement(
    pool: &PgPool,
    settings: &Settings,
    w: &WindowRow,
    bin: &str,
    d: &BankDay,
    format: &str,
    out: Out,
) -> anyhow::Result<(Rendered, Out)> {
    let buf = Shared::default();
    let mut writer = AnyWriter::new(format, buf.clone(), &header(settings, w, bin, format, d))?;
    let mut em = Emitter {
        out,
        sha: Sha256::new(),
        size: 0,
    };
    let mut after = None;
    let mut entries = 0i64;
    loop {
        let page = store::day_bookings_page(pool, bin, w.business_date, after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map(|last| (last.seq, last.id));
        for b in page {
            writer.write(&entry(b, w.business_date))?;
            entries += 1;
            em.drain_full(&buf).await?;
        }
        if !full {
            break;
        }
    }
    writer.finish()?;
    em.finish(&buf, entries).await
}

/// Renders the payout file of the settlement bank `bin` for window `w`.
pub async fn render_payouts(
    pool: &PgPool,
    w: &WindowRow,
    bin: &str,
    out: Out,
) -> anyhow::Result<(Rendered, Out)> {
    let buf = Shared::default();
    let mut em = Emitter {
        out,
        sha: Sha256::new(),
        size: 0,
    };
    let mut text = Shared::clone(&buf);
    writeln!(text, "{PAYOUT_HEADER}")?;
    let batch = payout_batch(bin, w.business_date);
    let (mut rows, mut sum) = (0i64, 0i64);
    let mut after = None;
    loop {
        let page = store::payouts(pool, w.business_date, Some("POSTED"), after, PAGE).await?;
        for p in page.iter().filter(|p| p.bank_bin == bin) {
            let (mut name, mut account) = (String::new(), String::new());
            quote_into(&mut name, &p.business_name);
            quote_into(&mut account, &p.account_number);
            writeln!(
                text,
                "{},{},{batch},{},{name},{},{account},{},VND",
                p.id, w.business_date, p.merchant_id, p.bank_bin, p.payout
            )?;
            rows += 1;
            sum += p.payout;
            em.drain_full(&buf).await?;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = Some(last.id),
            _ => break,
        }
    }
    writeln!(text, "TRAILER,{rows},{sum}")?;
    em.finish(&buf, rows).await
}

/// Writes every file of a closed window that is not written yet, each in one transaction.
pub async fn write_window(pool: &PgPool, settings: &Settings, w: &WindowRow) -> anyhow::Result<()> {
    let date = w.business_date;
    for (bin, d) in store::bank_days(pool, date).await? {
        for format in STATEMENT_FORMATS {
            if store::file_exists(pool, &bin, date, format).await? {
                continue;
            }
            let ext = if format.starts_with("CAMT") {
                "xml"
            } else if format == "MT940" {
                "sta"
            } else {
                "csv"
            };
            let name = format!(
                "paymesh_{bin}_{}_{}.{ext}",
                compact(date),
                format.to_lowercase()
            );
            store_file(pool, settings, w, &bin, Kind::Statement(format, &d), name).await?;
        }
    }
    // The payout file lists every payout of the window: it waits until none is refused (a
    // retried close posts them, then writes it).
    if !store::failed_payouts(pool, date).await?.is_empty() {
        return Ok(());
    }
    let mut bins: Vec<String> = store::payouts(pool, date, Some("POSTED"), None, i64::MAX)
        .await?
        .into_iter()
        .map(|p| p.bank_bin)
        .collect();
    bins.sort();
    bins.dedup();
    for bin in bins {
        if store::file_exists(pool, &bin, date, PAYOUT_FORMAT).await? {
            continue;
        }
        let name = format!("paymesh_payouts_{bin}_{}.csv", compact(date));
        store_file(pool, settings, w, &bin, Kind::Payouts, name).await?;
    }
    Ok(())
}

/// Which file of a bank's day.
enum Kind<'d> {
    Statement(&'static str, &'d BankDay),
    Payouts,
}

async fn store_file(
    pool: &PgPool,
    settings: &Settings,
    w: &WindowRow,
    bin: &str,
    kind: Kind<'_>,
    file_name: String,
) -> anyhow::Result<()> {
    let format = match kind {
        Kind::Statement(f, _) => f,
        Kind::Payouts => PAYOUT_FORMAT,
    };
    let (rendered, _) = render(pool, settings, w, bin, kind, Out::Discard).await?;
    store::insert_file(
        pool,
        &FileRow {
            id: Uuid::new_v4(),
            bank_bin: bin.to_owned(),
            business_date: w.business_date,
            format: format.to_owned(),
            file_name,
            size_bytes: rendered.size,
            sha256: rendered.sha256.clone(),
            entry_count: rendered.entries,
            create_ns: w.close_ns,
            renderer: RENDERER,
        },
    )
    .await?;
    tracing::info!(bin, format, date = %w.business_date, size = rendered.size, entries = rendered.entries, "file written");
    Ok(())
}

async fn render(
    pool: &PgPool,
    settings: &Settings,
    w: &WindowRow,
    bin: &str,
    kind: Kind<'_>,
    out: Out,
) -> anyhow::Result<(Rendered, Out)> {
    match kind {
        Kind::Statement(f, d) => render_statement(pool, settings, w, bin, d, f, out).await,
        Kind::Payouts => render_payouts(pool, w, bin, out).await,
    }
}

/// Streams a stored file to a bank: rendered again (the same bytes: everything it says is
/// stored), its digest checked at the end; a difference ends the stream with DATA_LOSS.
pub async fn pull(
    pool: &PgPool,
    settings: &Settings,
    file: &FileRow,
    description: pb::ReconFile,
    tx: tokio::sync::mpsc::Sender<Result<pb::GetReconFileResponse, tonic::Status>>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        file.renderer == RENDERER,
        "file {} was written by renderer {} and this is renderer {RENDERER}",
        file.id,
        file.renderer
    );
    let w = store::window(pool, file.business_date)
        .await?
        .with_context(|| format!("no window {}", file.business_date))?;
    let day = if file.format == PAYOUT_FORMAT {
        None
    } else {
        store::bank_days(pool, file.business_date)
            .await?
            .into_iter()
            .find(|(b, _)| *b == file.bank_bin)
            .map(|(_, d)| d)
    };
    let kind = match (&day, STATEMENT_FORMATS.iter().find(|f| **f == file.format)) {
        (Some(d), Some(f)) => Kind::Statement(f, d),
        (None, None) => Kind::Payouts,
        _ => anyhow::bail!("file {} has no bank day to render", file.id),
    };
    let out = Out::Pull {
        tx: tx.clone(),
        first: Some(description),
    };
    let (rendered, _) = render(pool, settings, &w, &file.bank_bin, kind, out).await?;
    if rendered.sha256 != file.sha256 {
        let _ = tx
            .send(Err(tonic::Status::data_loss(format!(
                "file {}: the bytes sent hash to {}, not {}: discard them",
                file.id, rendered.sha256, file.sha256
            ))))
            .await;
    }
    Ok(())
}
