//! A business day closed, paid out, pulled by its bank and reconciled against the bank's own
//! statement, through the real mesh (ledger, merchant, billing, payment, settlement) on real
//! PostgreSQL and Redis.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use paymesh_formats::{Account, Day, Direction, Entry, StatementHeader};
use paymesh_ledger::chart::{MerchantAccount, SystemAccount};
use paymesh_platform::auth::Principal;
use paymesh_platform::kit::ServiceDef;
use paymesh_platform::time::{Date, now_ns, timestamp_from_ns};
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::payment::v1 as ppb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use paymesh_proto::settlement::v1 as pb;
use paymesh_proto::settlement::v1::settlement_service_client::SettlementServiceClient;
use paymesh_settlement::SettlementService;
use paymesh_testkit::fixtures::active_vendor;
use paymesh_testkit::{Authed, TestMesh, keyed, reason};
use sha2::{Digest, Sha256};

const BANK: &str = "970436";
const OTHER_BANK: &str = "970415";

type Client = SettlementServiceClient<Authed>;

async fn start() -> TestMesh {
    start_with(&[]).await
}

async fn start_with(extra: &[(&str, &str)]) -> TestMesh {
    let mut overrides = vec![
        ("ledger.writers", "1"),
        ("payment.merchant_cache_ms", "0"),
        ("payment.fee_plan", "flat:1000"),
        ("settlement.schedule_poll_ms", "0"),
    ];
    overrides.extend_from_slice(extra);
    TestMesh::start_with(
        &[
            &paymesh_ledger::SERVICE as &dyn ServiceDef,
            &paymesh_merchant::SERVICE,
            &paymesh_billing::SERVICE,
            &paymesh_payment::SERVICE,
            &paymesh_settlement::SERVICE,
        ],
        &overrides,
    )
    .await
}

/// The business day open now (after 23:00 in Hanoi, tomorrow).
fn open_day(mesh: &TestMesh) -> Date {
    let svc = mesh.handle::<SettlementService>("settlement");
    paymesh_settlement::close::open_day(svc.settings(), now_ns())
}

fn settlement(mesh: &TestMesh, p: Principal) -> Client {
    SettlementServiceClient::new(mesh.channel_as("settlement", p))
}

fn operator(mesh: &TestMesh) -> Client {
    settlement(mesh, Principal::Operator("lan".into()))
}

fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

fn payments(mesh: &TestMesh, p: Principal) -> PaymentServiceClient<Authed> {
    PaymentServiceClient::new(mesh.channel_as("payment", p))
}

async fn intent(mesh: &TestMesh, m: &mpb::Merchant, amount: i64) -> ppb::PaymentIntent {
    payments(mesh, Principal::Merchant(m.id.clone()))
        .create_payment_intent(keyed(ppb::CreatePaymentIntentRequest {
            merchant_id: m.id.clone(),
            amount: Some(vnd(amount)),
            order_reference: format!("ORDER-{amount}"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap()
}

async fn credit(mesh: &TestMesh, txn: &str, account: &str, amount: i64, text: &str) -> ppb::Credit {
    payments(mesh, Principal::Bank(BANK.into()))
        .notify_credit(ppb::NotifyCreditRequest {
            bank_bin: BANK.into(),
            bank_transaction_id: txn.into(),
            account_number: account.into(),
            amount: Some(vnd(amount)),
            description: text.into(),
            value_time: Some(timestamp_from_ns(now_ns())),
        })
        .await
        .unwrap()
        .into_inner()
        .credit
        .unwrap()
}

async fn close_now(c: &mut Client, date: Date) -> pb::Window {
    c.close_window(pb::CloseWindowRequest {
        business_date: date.to_string(),
        cutoff_time: Some(timestamp_from_ns(now_ns())),
    })
    .await
    .unwrap()
    .into_inner()
    .window
    .unwrap()
}

/// A file as a bank pulls it: the digest from the first message checked over the chunks.
async fn pull(c: &mut Client, date: Date, format: pb::FileFormat) -> (pb::ReconFile, Vec<u8>) {
    let mut stream = c
        .get_recon_file(pb::GetReconFileRequest {
            bank_bin: BANK.into(),
            business_date: date.to_string(),
            format: format as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut file = None;
    let mut bytes = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(f) = m.file {
            file = Some(f);
        }
        bytes.extend_from_slice(&m.chunk);
    }
    let file = file.unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest, file.sha256,
        "{format:?}: the digest of the bytes sent"
    );
    assert_eq!(bytes.len() as i64, file.size_bytes);
    (file, bytes)
}

fn shared_formats() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/formats/iso20022")
}

/// `xmllint --schema`, a validator nobody here wrote.
fn xmllint(bytes: &[u8], xsd: &str) {
    let path = std::env::temp_dir().join(format!(
        "paymesh-{}.xml",
        paymesh_testkit::unique_key("camt")
    ));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(shared_formats().join(xsd))
        .arg(&path)
        .output()
        .expect("xmllint (Debian package libxml2-utils) must be installed");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{xsd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn day(d: Date) -> Day {
    Day::from_days_since_epoch(d.days())
}

/// A bank's statement as CSV, written with the formats crate's own writer.
fn statement_csv(date: Date, entries: &[Entry]) -> Vec<u8> {
    let (mut cc, mut cs, mut dc, mut ds) = (0u64, 0i64, 0u64, 0i64);
    for e in entries {
        match e.direction {
            Direction::Credit => {
                cc += 1;
                cs += e.amount;
            }
            Direction::Debit => {
                dc += 1;
                ds += e.amount;
            }
        }
    }
    let header = StatementHeader {
        message_id: "BANK-STMT".into(),
        created: "2026-12-01T17:00:00Z".into(),
        statement_id: "STMT-1".into(),
        sequence_number: 1,
        account: Account {
            number: paymesh_settlement::files::statement_account(BANK),
            currency: "VND".into(),
            owner_name: "PAYMESH".into(),
            servicer_bin: BANK.into(),
        },
        business_date: day(date),
        from_time: "2026-12-01T00:00:00+07:00".into(),
        to_time: "2026-12-01T23:00:00+07:00".into(),
        opening_balance: 0,
        closing_balance: cs - ds,
        credit_count: cc,
        credit_sum: cs,
        debit_count: dc,
        debit_sum: ds,
    };
    let mut w = paymesh_formats::statement_csv::CsvWriter::new(Vec::new(), &header).unwrap();
    for e in entries {
        w.write_entry(e).unwrap();
    }
    w.finish().unwrap()
}

fn line(date: Date, txn: &str, amount: i64, text: &str) -> Entry {
    Entry {
        amount,
        direction: Direction::Credit,
        booking_date: day(date),
        value_date: day(date),
        bank_reference: txn.into(),
        end_to_end_id: String::new(),
        description: text.into(),
        details: Vec::new(),
    }
}

async fn import(
    c: &mut Client,
    bin: &str,
    bytes: Vec<u8>,
    dry_run: bool,
) -> Result<pb::ReconRun, tonic::Status> {
    let mut messages = vec![pb::ImportStatementRequest {
        part: Some(pb::import_statement_request::Part::Header(
            pb::ImportHeader {
                bank_bin: bin.into(),
                dry_run,
                file_name: "statement".into(),
                ..Default::default()
            },
        )),
    }];
    for chunk in bytes.chunks(1000) {
        messages.push(pb::ImportStatementRequest {
            part: Some(pb::import_statement_request::Part::Chunk(chunk.to_vec())),
        });
    }
    c.import_statement(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner().run.unwrap())
}

async fn exceptions(c: &mut Client, run: &str) -> Vec<pb::ReconException> {
    c.list_recon_exceptions(pb::ListReconExceptionsRequest {
        run_id: run.into(),
        page_size: 100,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .exceptions
}

/// The posted movement (credits − debits) of `account` over commit positions
/// `[start, end)`, straight from the ledger's table.
async fn ledger_movement(
    mesh: &TestMesh,
    account: paymesh_money::Id128,
    start: i64,
    end: i64,
) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT (coalesce(sum(amount) FILTER (WHERE credit_account_id = $1), 0) \
               - coalesce(sum(amount) FILTER (WHERE debit_account_id = $1), 0))::int8 \
         FROM ledger.transfers WHERE (debit_account_id = $1 OR credit_account_id = $1) \
           AND seq >= $2 AND seq < $3 AND flags & (2 | 8) = 0",
    )
    .bind(account.to_uuid())
    .bind(start)
    .bind(end)
    .fetch_one(&mesh.pool)
    .await
    .unwrap()
}

fn ns(t: &Option<prost_types::Timestamp>) -> i64 {
    paymesh_platform::time::ns_from_timestamp(t.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn a_day_is_closed_paid_out_pulled_and_reconciled() {
    let mesh = start().await;
    let mut op = operator(&mesh);
    let today = open_day(&mesh);
    let (v1, v2) = (active_vendor(&mesh).await, active_vendor(&mesh).await);
    let i1 = intent(&mesh, &v1, 150_000).await;
    let i2 = intent(&mesh, &v2, 80_000).await;
    let unpaid = intent(&mesh, &v2, 77_000).await;
    let tag = paymesh_testkit::unique_key("t");
    let txn = |n: u32| format!("FT{tag}{n}");
    credit(
        &mesh,
        &txn(1),
        &v1.virtual_account_number,
        150_000,
        &format!("MBVCB.1.{}.CT tu NGUYEN VAN AN", i1.reference),
    )
    .await;
    credit(
        &mesh,
        &txn(2),
        &v1.virtual_account_number,
        50_000,
        "CHUYEN TIEN BAN CA",
    )
    .await;
    credit(
        &mesh,
        &txn(3),
        &v2.virtual_account_number,
        80_000,
        &format!("{} thanh toan", i2.reference),
    )
    .await;
    let parked = credit(&mesh, &txn(4), "99999999999", 20_000, "KHONG RO").await;
    assert_eq!(parked.outcome(), ppb::CreditOutcome::Suspense);

    // Closing the future is refused; closing now settles the day.
    let e = op
        .close_window(pb::CloseWindowRequest {
            business_date: today.plus_days(1).to_string(),
            cutoff_time: None,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "WINDOW_NOT_DUE");
    let w = close_now(&mut op, today).await;
    assert_eq!(w.status(), pb::WindowStatus::Settled, "{w:?}");
    assert_eq!(w.closed_by, "operator:lan");
    // Closing twice is harmless.
    let again = close_now(&mut op, today).await;
    assert_eq!(again, w);
    // A credit after the cut-off belongs to the next window.
    credit(
        &mesh,
        &txn(5),
        &v1.virtual_account_number,
        33_000,
        "SAU GIO CHOT",
    )
    .await;

    let payouts = op
        .list_payouts(pb::ListPayoutsRequest {
            business_date: today.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .payouts;
    assert_eq!(payouts.len(), 2, "{payouts:?}");
    let of = |m: &mpb::Merchant| {
        payouts
            .iter()
            .find(|p| p.merchant_id == m.id)
            .unwrap()
            .clone()
    };
    let (p1, p2) = (of(&v1), of(&v2));
    let amt = |m: &Option<cpb::Money>| m.as_ref().unwrap().amount.parse::<i64>().unwrap();
    assert_eq!(
        (
            amt(&p1.gross),
            amt(&p1.fees),
            p1.net.as_str(),
            amt(&p1.payout)
        ),
        (200_000, 2_000, "198000", 198_000)
    );
    assert_eq!(
        (amt(&p2.gross), amt(&p2.fees), amt(&p2.payout)),
        (80_000, 1_000, 79_000)
    );
    assert_eq!(p1.status(), pb::PayoutStatus::Posted);
    assert_eq!(amt(&w.gross), 280_000);
    assert_eq!(amt(&w.paid_out), 277_000);
    // The window's numbers add up to the ledger's movements over it, to the đồng.
    let (start, cutoff) = (ns(&w.start_time), ns(&w.cutoff_time));
    for (m, p) in [(&v1, &p1), (&v2, &p2)] {
        let id = uuid::Uuid::parse_str(&m.id).unwrap();
        let moved = ledger_movement(&mesh, MerchantAccount::Payable.id(id), start, cutoff).await;
        assert_eq!(
            moved,
            amt(&p.gross) - amt(&p.fees) - amt(&p.refunds) + p.adjustments.parse::<i64>().unwrap()
        );
        // The payout (after the cut-off) empties the payable of the window's money.
        let after = ledger_movement(&mesh, MerchantAccount::Payable.id(id), cutoff, i64::MAX).await;
        assert_eq!(
            after,
            if m.id == v1.id { 33_000 - 1_000 } else { 0 } - amt(&p.payout)
        );
    }

    // The bank pulls its files; another bank sees none of them.
    let mut bank = settlement(&mesh, Principal::Bank(BANK.into()));
    let listed = bank
        .list_recon_files(pb::ListReconFilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .files;
    let formats: Vec<i32> = listed.iter().map(|f| f.format).collect();
    for f in [
        pb::FileFormat::Camt053,
        pb::FileFormat::Camt054,
        pb::FileFormat::Mt940,
        pb::FileFormat::Csv,
    ] {
        assert!(formats.contains(&(f as i32)), "{f:?} in {listed:?}");
    }
    let mut other = settlement(&mesh, Principal::Bank(OTHER_BANK.into()));
    let e = other
        .list_recon_files(pb::ListReconFilesRequest {
            bank_bin: BANK.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = other
        .get_recon_file(pb::GetReconFileRequest {
            file_id: listed[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let (camt, bytes053) = pull(&mut bank, today, pb::FileFormat::Camt053).await;
    assert_eq!(
        camt.entry_count, 4,
        "four credits in; the two payouts are the next day's"
    );
    xmllint(&bytes053, "camt.053.001.08.xsd");
    let text = String::from_utf8(bytes053.clone()).unwrap();
    assert!(
        text.contains("<Amt Ccy=\"VND\">150000</Amt>"),
        "VND with no decimals"
    );
    let (_, bytes054) = pull(&mut bank, today, pb::FileFormat::Camt054).await;
    xmllint(&bytes054, "camt.054.001.08.xsd");
    let (_, mt940) = pull(&mut bank, today, pb::FileFormat::Mt940).await;
    assert!(String::from_utf8_lossy(&mt940).contains("150000,"));
    if let Ok(python) = std::env::var("PAYMESH_PYTHON") {
        let path =
            std::env::temp_dir().join(format!("paymesh-{}.sta", paymesh_testkit::unique_key("mt")));
        std::fs::write(&path, &mt940).unwrap();
        let out = Command::new(python)
            .arg("-c")
            .arg(
                "import sys, mt940\n\
                 t = mt940.models.Transactions()\n\
                 t.parse(open(sys.argv[1]).read())\n\
                 print(len(t), sum(int(x.data['amount'].amount) for x in t), t.data['final_closing_balance'].amount.amount)",
            )
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8(out.stdout).unwrap();
        assert_eq!(said.trim(), "4 300000 300000", "mt-940 read: {said}");
    }
    let (_, csv) = pull(&mut bank, today, pb::FileFormat::Csv).await;
    let csv = String::from_utf8(csv).unwrap();
    let trailer = csv.lines().last().unwrap();
    let clearing =
        paymesh_ledger::client::chain::system(SystemAccount::BankClearing { bin: BANK }).unwrap();
    let in_ledger = -ledger_movement(&mesh, clearing, start, cutoff).await;
    assert_eq!(trailer, format!("TRAILER,4,{in_ledger},0"));
    // Rendered again, the same bytes.
    let svc = mesh.handle::<SettlementService>("settlement");
    let window = paymesh_settlement::store::window(svc.pool(), today)
        .await
        .unwrap()
        .unwrap();
    let days = paymesh_settlement::store::bank_days(svc.pool(), today)
        .await
        .unwrap();
    let (_, d) = days.iter().find(|(b, _)| b == BANK).unwrap();
    let (_, out) = paymesh_settlement::files::render_statement(
        svc.pool(),
        svc.settings(),
        &window,
        BANK,
        d,
        "CAMT053",
        paymesh_settlement::files::Out::Memory(Vec::new()),
    )
    .await
    .unwrap();
    let paymesh_settlement::files::Out::Memory(again) = out else {
        panic!()
    };
    assert_eq!(again, bytes053, "a file rendered twice is identical");

    // The bank's own statement, with planted breaks: txn 2 booked for 50,001 (amount
    // mismatch), txn 3 twice (duplicate), a credit paymesh never heard of quoting the unpaid
    // intent (missing in the ledger), and txn 4 absent (missing in the bank).
    let statement = statement_csv(
        today,
        &[
            line(today, &txn(1), 150_000, "MBVCB.1 CT tu NGUYEN VAN AN"),
            line(today, &txn(2), 50_001, "CHUYEN TIEN BAN CA"),
            line(today, &txn(3), 80_000, "thanh toan"),
            line(today, &txn(3), 80_000, "thanh toan"),
            line(
                today,
                &txn(9),
                77_000,
                &format!("IBFT {} mua ca", unpaid.reference),
            ),
        ],
    );
    let dry = import(&mut op, BANK, statement.clone(), true)
        .await
        .unwrap();
    assert_eq!(
        (
            dry.matched,
            dry.amount_mismatch,
            dry.duplicate,
            dry.missing_in_ledger,
            dry.missing_in_bank
        ),
        (2, 1, 1, 1, 1),
        "{dry:?}"
    );
    assert_eq!(
        mesh.count("settlement.runs").await,
        0,
        "a dry run stores nothing"
    );
    let run = import(&mut op, BANK, statement.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        (
            run.matched,
            run.amount_mismatch,
            run.duplicate,
            run.missing_in_ledger,
            run.missing_in_bank
        ),
        (2, 1, 1, 1, 1),
        "{run:?}"
    );
    let items = op
        .list_recon_items(pb::ListReconItemsRequest {
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        items.len(),
        6,
        "every line and the booking missing in the bank, listed"
    );
    let breaks = exceptions(&mut op, &run.id).await;
    assert_eq!(breaks.len(), 4);
    // The same statement again changes nothing and opens nothing new.
    let repeat = import(&mut op, BANK, statement, false).await.unwrap();
    assert_eq!(repeat.already_matched, 2);
    assert_eq!(mesh.count("settlement.exceptions").await, 4);

    // Resolutions, audited with the operator's name.
    let find = |kind: pb::Outcome| breaks.iter().find(|e| e.kind() == kind).unwrap().clone();
    let resolve = |id: String, r: pb::Resolution, note: &str| pb::ResolveReconExceptionRequest {
        exception_id: id,
        resolution: r as i32,
        note: note.into(),
        account_number: String::new(),
    };
    let missing = find(pb::Outcome::MissingInLedger);
    let made = op
        .resolve_recon_exception(pb::ResolveReconExceptionRequest {
            account_number: v2.virtual_account_number.clone(),
            ..resolve(
                missing.id.clone(),
                pb::Resolution::CreatePayment,
                "bank confirmed the transfer",
            )
        })
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(made.status(), pb::ExceptionStatus::Resolved);
    assert_eq!(made.resolved_by, "operator:lan");
    assert!(!made.resolution_reference.is_empty());
    let paid = payments(&mesh, Principal::Merchant(v2.id.clone()))
        .get_payment_intent(ppb::GetPaymentIntentRequest {
            intent_id: unpaid.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();
    assert_eq!(
        paid.status(),
        ppb::IntentStatus::Paid,
        "the missing credit became the payment"
    );
    let adjusted = op
        .resolve_recon_exception(resolve(
            find(pb::Outcome::AmountMismatch).id,
            pb::Resolution::Adjust,
            "bank's fee",
        ))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    // The adjustment is the difference (the bank booked 50,001 for a 50,000 credit).
    let adjustment: i64 = sqlx::query_scalar("SELECT amount FROM ledger.transfers WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&adjusted.resolution_reference).unwrap())
        .fetch_one(&mesh.pool)
        .await
        .unwrap();
    assert_eq!(adjustment, 1);
    let dup = find(pb::Outcome::Duplicate);
    op.resolve_recon_exception(resolve(
        dup.id.clone(),
        pb::Resolution::Investigated,
        "bank reversed it",
    ))
    .await
    .unwrap();
    let e = op
        .resolve_recon_exception(resolve(dup.id.clone(), pb::Resolution::Adjust, "again"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "EXCEPTION_RESOLVED");
    let e = settlement(&mesh, Principal::Bank(BANK.into()))
        .resolve_recon_exception(resolve(dup.id, pb::Resolution::Investigated, "me"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM settlement.exception_actions WHERE actor = 'operator:lan'",
    )
    .fetch_one(&mesh.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3);

    // Tomorrow's statement carries the suspense credit a day late: its break closes itself.
    let late = statement_csv(
        today.plus_days(1),
        &[line(today.plus_days(1), &txn(4), 20_000, "KHONG RO")],
    );
    let next = import(&mut op, BANK, late, false).await.unwrap();
    assert_eq!((next.matched, next.breaks_closed), (1, 1), "{next:?}");
    let open = op
        .list_recon_exceptions(pb::ListReconExceptionsRequest {
            bank_bin: BANK.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exceptions;
    assert!(open.is_empty(), "{open:?}");

    // The next day, closed early as well: the payouts posted at the first close are its
    // debits at the vendors' settlement bank (970436 here), which books the first day's payout
    // file as one line naming its batch; and the payment created from the bank line is its
    // credit.
    let next = today.plus_days(1);
    let w2 = close_now(&mut op, next).await;
    assert_eq!(w2.status(), pb::WindowStatus::Settled, "{w2:?}");
    let (payout_file, payout_csv) = pull(&mut bank, today, pb::FileFormat::PayoutCsv).await;
    assert_eq!(payout_file.entry_count, 2);
    let payout_csv = String::from_utf8(payout_csv).unwrap();
    assert_eq!(payout_csv.lines().last().unwrap(), "TRAILER,2,277000");
    let batch = paymesh_settlement::close::payout_batch(BANK, today);
    assert!(payout_csv.contains(&batch), "{payout_csv}");
    let paid_out = Entry {
        direction: Direction::Debit,
        description: format!("CK THEO LO {batch}"),
        ..line(next, "FTPAYOUTLO1", 277_000, "")
    };
    let day2 = statement_csv(
        next,
        &[
            paid_out,
            line(next, &txn(5), 33_000, "SAU GIO CHOT"),
            line(
                next,
                &txn(9),
                77_000,
                &format!("IBFT {} mua ca", unpaid.reference),
            ),
        ],
    );
    let run2 = import(&mut op, BANK, day2, false).await.unwrap();
    assert_eq!(
        (
            run2.lines,
            run2.matched,
            run2.missing_in_bank,
            run2.missing_in_ledger,
            run2.amount_mismatch
        ),
        (3, 3, 0, 0, 0),
        "{run2:?}"
    );
    let lines2 = op
        .list_recon_items(pb::ListReconItemsRequest {
            run_id: run2.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        lines2[0].booking_ids.len(),
        2,
        "one bank line for both payouts: {lines2:?}"
    );

    // The files paymesh sent, read back as the bank's statements (camt.053, and camt.054):
    // every line is one settled already, nothing new.
    for bytes in [bytes053, bytes054] {
        let again = import(&mut op, BANK, bytes, true).await.unwrap();
        assert_eq!(
            (again.lines, again.already_matched, again.matched),
            (4, 4, 4),
            "{again:?}"
        );
        assert_eq!(
            again.missing_in_ledger + again.amount_mismatch + again.duplicate,
            0
        );
    }
}

/// The scheduled job closes, by itself, the latest day whose cut-off has passed.
#[tokio::test]
async fn the_scheduled_job_closes_the_day_whose_cut_off_passed() {
    let mesh = start_with(&[("settlement.schedule_poll_ms", "100")]).await;
    let svc = mesh.handle::<SettlementService>("settlement");
    let due = paymesh_settlement::close::latest_due(svc.settings(), now_ns());
    let mut op = operator(&mesh);
    let mut window = None;
    for _ in 0..100 {
        let w = op
            .get_window(pb::GetWindowRequest {
                business_date: due.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .window
            .unwrap();
        if w.status() == pb::WindowStatus::Settled {
            window = Some(w);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let window = window.expect("the scheduled job closed the day within 10 s");
    assert_eq!(window.closed_by, "service:settlement");
    // Its cut-off is the configured one (23:00 in Hanoi), not an early one.
    assert_eq!(
        ns(&window.cutoff_time),
        paymesh_settlement::close::cutoff_ns(svc.settings(), due)
    );
}

#[tokio::test]
async fn hostile_or_foreign_statements_are_refused_whole() {
    let mesh = start_with(&[("settlement.statement_bytes_max", "65536")]).await;
    let mut op = operator(&mesh);
    let doc = |body: &str| {
        format!(
            "<?xml version=\"1.0\"?>{body}<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt></BkToCstmrStmt></Document>"
        )
        .into_bytes()
    };
    let hostile = [
        doc("<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"),
        doc("<!DOCTYPE d [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]>"),
        b"<Document><BkToCstmrStmt><Stmt>".to_vec(),
        b"booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description\n2026-12-01,2026-12-01,CRDT,180000.00,VND,FT1,,x\nTRAILER,1,180000.00,0\n".to_vec(),
        b"booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description\n2026-12-01,2026-12-01,CRDT,180000,USD,FT1,,x\nTRAILER,1,180000,0\n".to_vec(),
        b"booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description\n2026-12-01,2026-12-01,CRDT,180000,VND,FT1,,x\nTRAILER,2,180000,0\n".to_vec(),
    ];
    for bytes in hostile {
        let e = import(&mut op, BANK, bytes.clone(), false)
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::InvalidArgument,
            "{}: {e:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // Another bank's statement, and a bank importing for another.
    let today = open_day(&mesh);
    let mut foreign = statement_csv(today, &[line(today, "FT1", 1_000, "x")]);
    let camt = {
        let header = StatementHeader {
            message_id: "M".into(),
            created: "2026-12-01T17:00:00Z".into(),
            statement_id: "S".into(),
            sequence_number: 1,
            account: Account {
                number: "0011001234567".into(),
                currency: "VND".into(),
                owner_name: "X".into(),
                servicer_bin: OTHER_BANK.into(),
            },
            business_date: day(today),
            from_time: "2026-12-01T00:00:00+07:00".into(),
            to_time: "2026-12-01T23:00:00+07:00".into(),
            opening_balance: 0,
            closing_balance: 1_000,
            credit_count: 1,
            credit_sum: 1_000,
            debit_count: 0,
            debit_sum: 0,
        };
        let mut w = paymesh_formats::camt::Camt053Writer::new(Vec::new(), &header).unwrap();
        w.write_entry(&line(today, "FT1", 1_000, "x")).unwrap();
        w.finish().unwrap()
    };
    let e = import(&mut op, BANK, camt, false).await.unwrap_err();
    assert_eq!(reason(&e), "STATEMENT_OTHER_BANK");
    let e = import(
        &mut settlement(&mesh, Principal::Bank(OTHER_BANK.into())),
        BANK,
        foreign.clone(),
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // Over the size limit: RESOURCE_EXHAUSTED.
    foreign.resize(100_000, b' ');
    let e = import(&mut op, BANK, foreign, false).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        mesh.count("settlement.runs").await,
        0,
        "nothing half-imported"
    );
    assert_eq!(mesh.count("settlement.matches").await, 0);
}

/// A refund reserved but not paid at the cut-off keeps its money: the payout is what the
/// account can pay, the rest is held; when the bank pays the refund the next day, the refund
/// and the money held cancel.
#[tokio::test]
async fn a_refund_pending_at_the_cut_off_keeps_its_money() {
    let mesh = start().await;
    let mut op = operator(&mesh);
    let today = open_day(&mesh);
    let v = active_vendor(&mesh).await;
    let txn = paymesh_testkit::unique_key("FT");
    let paid = credit(
        &mesh,
        &txn,
        &v.virtual_account_number,
        100_000,
        "CHUYEN TIEN",
    )
    .await;
    let refund = payments(&mesh, Principal::Merchant(v.id.clone()))
        .refund_payment(keyed(ppb::RefundPaymentRequest {
            payment_id: paid.payment_id.clone(),
            amount: Some(vnd(30_000)),
            reason: "3 kg returned".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(refund.status(), ppb::RefundStatus::Pending);
    let w = close_now(&mut op, today).await;
    assert_eq!(w.status(), pb::WindowStatus::Settled, "{w:?}");
    let line =
        |payouts: Vec<pb::Payout>| payouts.into_iter().find(|p| p.merchant_id == v.id).unwrap();
    let list = |date: Date| pb::ListPayoutsRequest {
        business_date: date.to_string(),
        ..Default::default()
    };
    let p = line(
        op.list_payouts(list(today))
            .await
            .unwrap()
            .into_inner()
            .payouts,
    );
    let amt = |m: &Option<cpb::Money>| m.as_ref().unwrap().amount.parse::<i64>().unwrap();
    // Fee 1,000 less the 300 given back with the refund's share; 30,000 reserved stays.
    assert_eq!(
        (amt(&p.gross), amt(&p.fees), p.net.as_str()),
        (100_000, 700, "99300")
    );
    assert_eq!((amt(&p.payout), p.carried_out.as_str()), (69_300, "30000"));
    // The bank pays the refund back; the next day's line: the refund and the money held cancel.
    payments(&mesh, Principal::Bank(BANK.into()))
        .settle_refund(ppb::SettleRefundRequest {
            refund_id: refund.id.clone(),
            status: ppb::RefundStatus::Completed as i32,
            failure_reason: String::new(),
        })
        .await
        .unwrap();
    let next = today.plus_days(1);
    let w2 = close_now(&mut op, next).await;
    assert_eq!(w2.status(), pb::WindowStatus::Settled, "{w2:?}");
    let p2 = line(
        op.list_payouts(list(next))
            .await
            .unwrap()
            .into_inner()
            .payouts,
    );
    assert_eq!(
        (
            amt(&p2.refunds),
            p2.carried_in.as_str(),
            amt(&p2.payout),
            p2.carried_out.as_str()
        ),
        (30_000, "30000", 0, "0"),
        "{p2:?}"
    );
}
