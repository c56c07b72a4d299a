//! The demo's third part: the day is closed and paid out, the bank pulls its camt.053 with the
//! CLI, a statement of the bank's with planted breaks is imported with the CLI, and the
//! operator lists and resolves the breaks.

use std::process::Command;

use anyhow::Context;
use paymesh_formats::{Direction, Entry, Format, StatementHeader};
use paymesh_platform::time::{Date, now_ns, timestamp_from_ns};
use paymesh_proto::settlement::v1 as pb;
use paymesh_proto::settlement::v1::settlement_service_client::SettlementServiceClient;
use serde_json::Value;

use crate::demo::{Authed, BANK_BIN, Mesh};

fn settlement(mesh: &Mesh<'_>) -> anyhow::Result<SettlementServiceClient<Authed>> {
    Ok(SettlementServiceClient::new(mesh.channel(
        &mesh.settlement,
        &mesh.people,
        "operator:demo",
    )?))
}

/// This binary's CLI verb against the demo's settlement service, as the operator (or the
/// bank, pulling); its JSON answer.
fn cli(mesh: &Mesh<'_>, args: &[&str]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("finding the paymesh binary")?;
    let who = if args.get(1) == Some(&"pull") {
        paymesh_platform::auth::Principal::Bank(BANK_BIN.into())
    } else {
        paymesh_platform::auth::Principal::Operator("demo".into())
    };
    let token = mesh.people.mint(&who, 300)?;
    let out = Command::new(exe)
        .args(args)
        .args(["--addr", &mesh.settlement])
        .env("PAYMESH_TOKEN", token)
        .output()
        .context("running the CLI")?;
    if !out.status.success() {
        anyhow::bail!(
            "paymesh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn num(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or(0)
}

/// The day to close: the one open now, or the day after the last closed one when a demo run
/// before this one closed it already (each run closes the next day early).
async fn day_to_close(c: &mut SettlementServiceClient<Authed>) -> anyhow::Result<Date> {
    let last = c
        .list_windows(pb::ListWindowsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .windows
        .into_iter()
        .next();
    // Today until its cut-off (the service's, as GetWindow tells it), tomorrow after it.
    let today = Date::today_in_vietnam();
    let cutoff = c
        .get_window(pb::GetWindowRequest {
            business_date: today.to_string(),
        })
        .await?
        .into_inner()
        .window
        .and_then(|w| w.cutoff_time)
        .context("no cut-off for today")?;
    let passed = paymesh_platform::time::ns_from_timestamp(&cutoff)
        .map_err(|e| anyhow::anyhow!("cut-off {cutoff}: {e}"))?
        <= now_ns();
    let open = if passed { today.plus_days(1) } else { today };
    Ok(
        match last.and_then(|w| Date::parse(&w.business_date).ok()) {
            Some(d) if d >= open => d.plus_days(1),
            _ => open,
        },
    )
}

pub async fn run(mesh: &Mesh<'_>, vendor_account: &str) -> anyhow::Result<()> {
    println!("\n== demo: the day closed, pulled by the bank and reconciled ==");
    let mut c = settlement(mesh)?;
    let day = day_to_close(&mut c).await?;
    let window = c
        .close_window(pb::CloseWindowRequest {
            business_date: day.to_string(),
            cutoff_time: Some(timestamp_from_ns(now_ns())),
        })
        .await?
        .into_inner()
        .window
        .context("no window in the answer")?;
    let m = |x: &Option<paymesh_proto::common::v1::Money>| {
        x.as_ref().map(|m| m.amount.clone()).unwrap_or_default()
    };
    println!(
        "operator closes {day} now: {} — gross {}, fees {}, refunds {}, net {}, paid out {} in {} payout(s)",
        paymesh_settlement::json::window(&window)["status"]
            .as_str()
            .unwrap_or_default(),
        m(&window.gross),
        m(&window.fees),
        m(&window.refunds),
        m(&window.net),
        m(&window.paid_out),
        window.payout_count
    );

    let dir = std::env::temp_dir().join(format!("paymesh-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let camt = dir.join(format!("camt053-{BANK_BIN}-{day}.xml"));
    let camt_path = camt.display().to_string();
    let date = day.to_string();
    let pulled = cli(
        mesh,
        &[
            "recon", "pull", "--bank", BANK_BIN, "--date", &date, "--format", "camt053", "--out",
            &camt_path,
        ],
    )?;
    println!(
        "bank {BANK_BIN} pulls its camt.053 with `paymesh recon pull`: {} entries, {} bytes, sha256 {}",
        num(&pulled, "entries"),
        num(&pulled, "size_bytes"),
        pulled["sha256"].as_str().unwrap_or_default()
    );

    // The bank's own statement of the day: what paymesh sent, with breaks planted.
    let bytes = std::fs::read(&camt)?;
    let mut entries: Vec<Entry> = Vec::new();
    let info = paymesh_formats::read_statement(Format::Camt053, bytes.as_slice(), "VND", |l| {
        entries.push(Entry {
            amount: l.amount,
            direction: l.direction,
            booking_date: l.booking_date,
            value_date: l.value_date,
            bank_reference: l.bank_reference,
            end_to_end_id: l.end_to_end_id,
            description: l.description,
            details: Vec::new(),
        });
        Ok(())
    })?;
    let credits: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].direction == Direction::Credit)
        .collect();
    if let [first, second, ..] = credits[..] {
        entries[second].amount += 1_000; // the bank booked 1,000 more
        let repeated = entries[first].clone(); // and the first credit twice
        entries.push(repeated);
    }
    entries.retain(|e| e.direction == Direction::Credit); // the refund never reached it
    let mut unknown = entries
        .first()
        .cloned()
        .context("no credit on the day's statement")?;
    unknown.amount = 65_000;
    unknown.bank_reference =
        format!("FT{}", &uuid::Uuid::new_v4().simple().to_string()[..12]).to_uppercase();
    unknown.description = "CHUYEN TIEN MUA CA".into();
    entries.push(unknown.clone()); // and a credit paymesh never heard of
    let (credit_sum, credit_count) = (
        entries.iter().map(|e| e.amount).sum::<i64>(),
        entries.len() as u64,
    );
    let header = StatementHeader {
        message_id: format!("BANK-{BANK_BIN}-{}", day.to_string().replace('-', "")),
        created: paymesh_platform::time::rfc3339_from_ns(now_ns()),
        statement_id: format!("STMT-{day}"),
        sequence_number: 1,
        account: paymesh_formats::Account {
            number: info.account_number.clone(),
            currency: "VND".into(),
            owner_name: "PAYMESH".into(),
            servicer_bin: BANK_BIN.into(),
        },
        business_date: paymesh_formats::Day::from_days_since_epoch(day.days()),
        from_time: format!("{day}T00:00:00+07:00"),
        to_time: format!("{day}T23:59:59+07:00"),
        opening_balance: 0,
        closing_balance: credit_sum,
        credit_count,
        credit_sum,
        debit_count: 0,
        debit_sum: 0,
    };
    let mut w = paymesh_formats::statement_csv::CsvWriter::new(Vec::new(), &header)?;
    for e in &entries {
        w.write_entry(e)?;
    }
    let statement = dir.join(format!("statement-{BANK_BIN}-{day}.csv"));
    std::fs::write(&statement, w.finish()?)?;
    let statement_path = statement.display().to_string();
    let dry = cli(
        mesh,
        &[
            "recon",
            "import",
            "--bank",
            BANK_BIN,
            "--file",
            &statement_path,
            "--dry-run",
        ],
    )?;
    println!(
        "dry run of the bank's statement: {} lines, stores nothing",
        num(&dry, "lines")
    );
    let run = cli(
        mesh,
        &[
            "recon",
            "import",
            "--bank",
            BANK_BIN,
            "--file",
            &statement_path,
        ],
    )?;
    println!(
        "bank statement imported with `paymesh recon import`: matched {}, missing_in_ledger {}, missing_in_bank {}, amount_mismatch {}, duplicate {}",
        num(&run, "matched"),
        num(&run, "missing_in_ledger"),
        num(&run, "missing_in_bank"),
        num(&run, "amount_mismatch"),
        num(&run, "duplicate")
    );
    let again = cli(
        mesh,
        &[
            "recon",
            "import",
            "--bank",
            BANK_BIN,
            "--file",
            &statement_path,
        ],
    )?;
    println!(
        "imported again: already_matched {}, nothing new",
        num(&again, "already_matched")
    );
    let run_id = run["run_id"].as_str().unwrap_or_default().to_owned();
    let listed = cli(mesh, &["recon", "exceptions", "--run", &run_id])?;
    let breaks = listed["exceptions"].as_array().cloned().unwrap_or_default();
    println!("`paymesh recon exceptions`: {} open", breaks.len());
    for e in &breaks {
        let kind = e["kind"].as_str().unwrap_or_default();
        let id = e["id"].as_str().unwrap_or_default();
        let (action, note) = match kind {
            "AMOUNT_MISMATCH" => ("adjust", "bank charged 1,000 more; adjusted to suspense"),
            "MISSING_IN_LEDGER" => ("create-payment", "bank confirmed the transfer to the stall"),
            "DUPLICATE" => ("investigated", "bank reversed its double booking"),
            _ => ("investigated", "refund paid out the next business day"),
        };
        let mut args = vec![
            "recon",
            "resolve",
            "--exception",
            id,
            "--action",
            action,
            "--note",
            note,
        ];
        if action == "create-payment" {
            args.extend(["--account", vendor_account]);
        }
        let done = cli(mesh, &args)?;
        println!(
            "  {kind} {} đồng ({}) -> {} by {}",
            e["item"]["amount"].as_str().unwrap_or_default(),
            e["item"]["direction"].as_str().unwrap_or_default(),
            done["resolution"].as_str().unwrap_or_default(),
            done["resolved_by"].as_str().unwrap_or_default()
        );
    }
    let open = cli(mesh, &["recon", "exceptions", "--bank", BANK_BIN])?;
    println!(
        "open breaks left: {}",
        open["exceptions"].as_array().map_or(0, Vec::len)
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!("== settlement demo done ==");
    Ok(())
}
