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
        "[\"OK\", \"OK\"]",
        "[\"EXISTS\", \"EXISTS\"]",
        "[\"EXCEEDS_CREDITS\"]",
        "== demo done ==",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let linked = stdout.lines().find(|l| l.contains("(linked)")).unwrap();
    assert!(linked.ends_with("[\"OK\", \"OK\"]"), "{linked}");
    // Balances: the vendor was paid 150,000 + 80,000 and paid a 1,500 fee.
    let vendor = stdout.lines().find(|l| l.starts_with("vendor:")).unwrap();
    let figures: Vec<&str> = vendor.split_whitespace().rev().take(2).collect();
    assert_eq!(figures, vec!["230000", "1500"], "{vendor}");
    let _ = std::fs::remove_dir_all(&dir);
}
