//! `paymesh-load recon` and `paymesh-load camt`: the settlement service's two heavy paths, run
//! in-process through its library on a real PostgreSQL (the database in
//! `PAYMESH_DATABASE_URL`, migrated here), timed, with the process's peak memory.
//!
//! `recon`: N bookings of one bank's day are stored (untimed), and the bank's statement of
//! them is written as a CSV file with about 1 % of each break planted — lines missing (a
//! booking the bank lacks), amounts off by one đồng, transactions booked twice, unknown
//! credits — and 1 % matched only by the payment reference in the text. Then, timed: the file
//! is read and imported as `ImportStatement` imports it (parsed, matched three ways, its run,
//! lists and exceptions stored). The run's counts must equal what was planted, exactly.
//!
//! `camt`: N bookings of a closed day are stored (untimed); then, timed, the day's camt.053
//! is rendered as a window's close renders it: read a page at a time, written, cut into
//! chunks, stored with its SHA-256.
//!
//! Peak memory is the process's VmHWM, reset (`/proc/self/clear_refs`) just before the timed
//! part.

use std::time::Instant;

use anyhow::Context;
use paymesh_formats::{Account, Day, Direction, Entry, StatementHeader};
use paymesh_platform::time::Date;
use paymesh_settlement::store::{self, Booking};
use paymesh_vn::reference::{Kind, Reference};
use sqlx::PgPool;
use uuid::Uuid;

const BANK: &str = "970436";
/// Most bookings one run may store, whatever is asked.
const BOOKINGS_MAX: u64 = 5_000_000;

#[derive(clap::Args)]
pub struct ReconRun {
    /// Bookings (≈ statement lines).
    #[arg(long, default_value_t = 1_000_000)]
    bookings: u64,
}

#[derive(clap::Args)]
pub struct CamtRun {
    /// Entries of the day.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Also write the file here (for xmllint).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn peak_reset() {
    // "5" resets the peak resident set size (Linux >= 4.0); without it VmHWM covers the seeding.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

async fn pool() -> anyhow::Result<PgPool> {
    let url = std::env::var("PAYMESH_DATABASE_URL").context("PAYMESH_DATABASE_URL")?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .context("connecting to PostgreSQL")?;
    paymesh_platform::migrate::run(&pool, store::SCHEMA, &store::migrations()).await?;
    Ok(pool)
}

/// What booking `i` of the day is.
fn booking(i: u64, day: Date) -> Booking {
    let by_reference = i % 100 == 4;
    Booking {
        id: Uuid::from_u128(0x5e77_0000_0000_0000_0000_0000_0000_0000 | u128::from(i)),
        bank_bin: BANK.into(),
        business_date: day,
        seq: i64::try_from(i).unwrap_or(i64::MAX),
        direction: store::Direction::Credit,
        amount: 10_000 + i64::try_from((i * 7_919) % 990_000).unwrap_or(0),
        code: "QR_PAYMENT".into(),
        in_ledger: true,
        bank_reference: if by_reference {
            String::new()
        } else {
            format!("FT{i:012}")
        },
        end_to_end_id: String::new(),
        reference: if by_reference {
            Reference::new(Kind::Intent, i).as_str().to_owned()
        } else {
            String::new()
        },
        batch: String::new(),
        description: format!("CT tu 0071000{i} NGUYEN VAN AN thanh toan"),
        value_date: day,
        credit_id: None,
    }
}

async fn seed(pool: &PgPool, n: u64, day: Date) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let mut batch = Vec::with_capacity(50_000);
    for i in 1..=n {
        batch.push(booking(i, day));
        if batch.len() == 50_000 || i == n {
            store::insert_bookings(&mut conn, &batch).await?;
            batch.clear();
        }
    }
    eprintln!(
        "seeded {n} bookings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn day_of(d: Date) -> Day {
    Day::from_days_since_epoch(d.days())
}

/// The planted counts of a run over `n` bookings.
#[derive(Debug, Default, PartialEq, Eq)]
struct Planted {
    lines: i64,
    matched: i64,
    missing_in_ledger: i64,
    missing_in_bank: i64,
    amount_mismatch: i64,
    duplicate: i64,
}

/// The bank's statement of the day with the breaks planted, written to `path`.
fn statement(path: &std::path::Path, n: u64, day: Date) -> anyhow::Result<Planted> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut planted = Planted::default();
    let line = |b: &Booking, amount: i64, bank_reference: String| Entry {
        amount,
        direction: Direction::Credit,
        booking_date: day_of(day),
        // A line matched by its reference is booked by the bank a day earlier (tolerated).
        value_date: day_of(day.plus_days(if b.reference.is_empty() { 0 } else { -1 })),
        bank_reference,
        end_to_end_id: String::new(),
        description: if b.reference.is_empty() {
            b.description.clone()
        } else {
            format!("IBFT {} {}", b.reference, b.description)
        },
        details: Vec::new(),
    };
    for i in 1..=n {
        let b = booking(i, day);
        match i % 100 {
            1 => planted.missing_in_bank += 1,
            2 => {
                entries.push(line(&b, b.amount + 1, b.bank_reference.clone()));
                planted.amount_mismatch += 1;
            }
            3 => {
                entries.push(line(&b, b.amount, b.bank_reference.clone()));
                entries.push(line(&b, b.amount, b.bank_reference.clone()));
                planted.matched += 1;
                planted.duplicate += 1;
            }
            4 => {
                // The bank's own transaction id; paymesh knows the payment by its reference.
                entries.push(line(&b, b.amount, format!("VCB{i:012}")));
                planted.matched += 1;
            }
            _ => {
                entries.push(line(&b, b.amount, b.bank_reference.clone()));
                planted.matched += 1;
            }
        }
        if i % 100 == 50 {
            entries.push(Entry {
                bank_reference: format!("UNKNOWN{i:010}"),
                description: "CHUYEN TIEN KHONG RO".into(),
                ..line(&b, 77_000, String::new())
            });
            planted.missing_in_ledger += 1;
        }
    }
    planted.lines = entries.len() as i64;
    let sum: i64 = entries.iter().map(|e| e.amount).sum();
    let header = StatementHeader {
        message_id: "BENCH".into(),
        created: "2026-12-01T17:00:00Z".into(),
        statement_id: "BENCH".into(),
        sequence_number: 1,
        account: Account {
            number: paymesh_settlement::files::statement_account(BANK),
            currency: "VND".into(),
            owner_name: "PAYMESH".into(),
            servicer_bin: BANK.into(),
        },
        business_date: day_of(day),
        from_time: format!("{day}T00:00:00+07:00"),
        to_time: format!("{day}T23:00:00+07:00"),
        opening_balance: 0,
        closing_balance: sum,
        credit_count: entries.len() as u64,
        credit_sum: sum,
        debit_count: 0,
        debit_sum: 0,
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = paymesh_formats::statement_csv::CsvWriter::new(file, &header)?;
    for e in &entries {
        w.write_entry(e)?;
    }
    w.finish()?;
    Ok(planted)
}

pub async fn recon(run: ReconRun) -> anyhow::Result<()> {
    let n = run.bookings.clamp(100, BOOKINGS_MAX);
    let pool = pool().await?;
    let day = Date::today_in_vietnam();
    seed(&pool, n, day).await?;
    let path = std::env::temp_dir().join(format!("paymesh-recon-bench-{}.csv", Uuid::new_v4()));
    let planted = statement(&path, n, day)?;
    let size = std::fs::metadata(&path)?.len();
    // Off the clock: the file into the page cache, the book's pages into PostgreSQL's.
    let _ = std::fs::read(&path)?;
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM settlement.bookings")
        .fetch_one(&pool)
        .await?;
    peak_reset();
    let started = Instant::now();
    let bytes = std::fs::read(&path)?;
    let (result, timings) = paymesh_settlement::import::import_timed(
        &pool,
        paymesh_settlement::import::Statement {
            bank_bin: BANK.into(),
            format: None,
            dry_run: false,
            file_name: "bench.csv".into(),
            bytes,
            actor: "operator:bench".into(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("import refused: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let peak = peak_mib();
    let _ = std::fs::remove_file(&path);
    let got = Planted {
        lines: result.lines,
        matched: result.matched,
        missing_in_ledger: result.missing_in_ledger,
        missing_in_bank: result.missing_in_bank,
        amount_mismatch: result.amount_mismatch,
        duplicate: result.duplicate,
    };
    println!(
        "recon: {} statement lines ({:.0} MB CSV) against {n} bookings: {elapsed:.2} s (read {} ms while loading, loaded at {} ms, match {} ms, store {} ms), peak {peak:.0} MiB; cores={}; matched={} missing_in_ledger={} missing_in_bank={} amount_mismatch={} duplicate={}",
        result.lines,
        size as f64 / 1e6,
        timings.parse_ms,
        timings.load_ms,
        timings.match_ms,
        timings.store_ms,
        cores(),
        result.matched,
        result.missing_in_ledger,
        result.missing_in_bank,
        result.amount_mismatch,
        result.duplicate
    );
    println!(
        "RESULT label=recon lines={} csv_mb={:.0} bookings={n} seconds={elapsed:.2} read_ms={} loaded_ms={} match_ms={} store_ms={} peak_mib={peak:.0}",
        result.lines,
        size as f64 / 1e6,
        timings.parse_ms,
        timings.load_ms,
        timings.match_ms,
        timings.store_ms,
    );
    anyhow::ensure!(
        got == planted,
        "the run found {got:?}, but {planted:?} was planted"
    );
    println!("recon: every planted break found, nothing else flagged");
    Ok(())
}

pub async fn camt(run: CamtRun) -> anyhow::Result<()> {
    let n = run.entries.clamp(1, BOOKINGS_MAX);
    let pool = pool().await?;
    let day = Date::today_in_vietnam();
    seed(&pool, n, day).await?;
    let now = paymesh_platform::time::now_ns();
    let window = store::WindowRow {
        business_date: day,
        status: "CLOSED".into(),
        start_seq: 0,
        cutoff_seq: now,
        closed_by: "operator:bench".into(),
        failure_reason: String::new(),
        close_ns: now,
        settle_ns: None,
    };
    // The window and the bank's day (its sums over the bookings just stored).
    store::store_closed(&pool, &window, &[], &[]).await?;
    let settings = paymesh_settlement::settings::Settings {
        cutoff_seconds: 23 * 3600,
        schedule_poll: None,
        statement_bytes_max: 1 << 28,
        account_owner: "PAYMESH".into(),
    };
    let days = store::bank_days(&pool, day).await?;
    let (_, d) = days.first().context("no bank day")?;
    peak_reset();
    let started = Instant::now();
    let (rendered, _) = paymesh_settlement::files::render_statement(
        &pool,
        &settings,
        &window,
        BANK,
        d,
        "CAMT053",
        paymesh_settlement::files::Out::Discard,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "camt: camt.053 of {} entries ({:.0} MB) produced (rendered from PostgreSQL, SHA-256 taken) in {elapsed:.2} s, peak {:.0} MiB; cores={}; sha256={}",
        rendered.entries,
        rendered.size as f64 / 1e6,
        peak_mib(),
        cores(),
        rendered.sha256
    );
    println!(
        "RESULT label=camt entries={} mb={:.0} seconds={elapsed:.2} peak_mib={:.0}",
        rendered.entries,
        rendered.size as f64 / 1e6,
        peak_mib()
    );
    if let Some(out) = run.out {
        let (_, bytes) = paymesh_settlement::files::render_statement(
            &pool,
            &settings,
            &window,
            BANK,
            d,
            "CAMT053",
            paymesh_settlement::files::Out::Memory(Vec::new()),
        )
        .await?;
        if let paymesh_settlement::files::Out::Memory(bytes) = bytes {
            std::fs::write(&out, bytes)?;
        }
    }
    Ok(())
}
