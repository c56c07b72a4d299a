//! The README's first command, `paymesh dev --demo`, run for real (against the test stack's
//! PostgreSQL and Redis instead of starting the dev ones).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_the_demo_and_exits() {
    let (db_url, _pool) = paymesh_testkit::fresh_database("dev_demo_test")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("paymesh-dev-{}", paymesh_money::Id128::random()));
    let out = Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .args(["dev", "--demo", "--exit-after-demo"])
        .env("PAYMESH_DATABASE_URL", &db_url)
        .env("PAYMESH_REDIS_URL", paymesh_testkit::redis_url())
        .env(
            "PAYMESH_AUTH_PRIVATE_KEY_FILE",
            dir.join("private/mesh.pem"),
        )
        .env(
            "PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE",
            dir.join("private/operator.pem"),
        )
        .env("PAYMESH_AUTH_PUBLIC_KEYS_DIR", dir.join("public"))
        .env("PAYMESH_LEDGER_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_MERCHANT_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_PAYMENT_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_BILLING_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_SETTLEMENT_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_STALL_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_STALL_PAGE_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_PAYMENT_WEBHOOK_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "paymesh dev is up",
        "operator approved vendor",
        "outcome PAID",
        "duplicate=true (applied once)",
        "vendor's stream: PAYMENT_RECEIVED 150000 đồng (fee 750 under percent:0.5,cap:50000)",
        "vendor refunds 50000 đồng: PENDING (fee given back 250)",
        "bank pays it back to the buyer: COMPLETED",
        "water company uploads its CSV: loaded 2, unchanged 0, rejected 1",
        ": amount_due: must be whole đồng, digits only",
        "bank app pays 186000 đồng: bill PAID",
        "second app pays the same bill: refused (bill ",
        "outcome BILL, bill PAID",
        "TOTAL,,2,280500,0,280500",
        "== bills demo done ==",
        ": SETTLED — gross ",
        "bank 970436 pulls its camt.053 with `paymesh recon pull`: 3 entries",
        "dry run of the bank's statement: 4 lines, stores nothing",
        "matched 1, missing_in_ledger 1, missing_in_bank 1, amount_mismatch 1, duplicate 1",
        "imported again: already_matched 1, nothing new",
        "`paymesh recon exceptions`: 4 open",
        "MISSING_IN_LEDGER 65000 đồng (CRDT) -> CREATE_PAYMENT by operator:demo",
        "open breaks left: 0",
        "== settlement demo done ==",
        "stall page for the demo vendor",
        "/signin?token=",
        "== demo done ==",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Balances: the vendor was paid 150,000 and 250 of its 750 fee back, and paid out 50,000
    // and the fee; the bank's payout account owes it the 50,000 it paid the buyer.
    let line = |name: &str| -> Vec<String> {
        let l = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        l.trim_start()[name.len()..]
            .split_whitespace()
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(line("vendor payable"), vec!["50750", "150250"]);
    assert_eq!(line("bank 970436 payout")[..2], ["0", "50000"]);
    // The water company is owed both bills (no fee under the default plan).
    assert_eq!(line("biller payable"), vec!["0", "280500"]);
    let rejected = stdout.lines().find(|l| l.contains("line 4 (")).unwrap();
    assert!(rejected.contains("amount_due"), "{rejected}");
    let _ = std::fs::remove_dir_all(&dir);
}
