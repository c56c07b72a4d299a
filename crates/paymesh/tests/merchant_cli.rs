//! Issue 3's "done when", run for real: against `paymesh dev`, an operator onboards a market
//! vendor with the CLI, approves it, and prints its static VietQR as a PNG that a scanner reads;
//! then sets and clears the vendor's fee plan.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_onboards_approves_and_prints_the_static_qr() {
    let (db_url, _pool) = paymesh_testkit::fresh_database("merchant_cli_test")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("paymesh-mcli-{}", paymesh_money::Id128::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let merchant_addr = format!("127.0.0.1:{}", paymesh_testkit::free_port());
    let stall_addr = format!("127.0.0.1:{}", paymesh_testkit::free_port());
    let page_addr = format!("127.0.0.1:{}", paymesh_testkit::free_port());
    let env = [
        ("PAYMESH_DATABASE_URL", db_url),
        ("PAYMESH_REDIS_URL", paymesh_testkit::redis_url()),
        (
            "PAYMESH_AUTH_PRIVATE_KEY_FILE",
            dir.join("private/mesh.pem").display().to_string(),
        ),
        (
            "PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE",
            dir.join("private/operator.pem").display().to_string(),
        ),
        (
            "PAYMESH_AUTH_PUBLIC_KEYS_DIR",
            dir.join("public").display().to_string(),
        ),
        ("PAYMESH_OPERATOR", "alice".to_string()),
        (
            "PAYMESH_LEDGER_LISTEN",
            format!("127.0.0.1:{}", paymesh_testkit::free_port()),
        ),
        ("PAYMESH_MERCHANT_LISTEN", merchant_addr.clone()),
        ("PAYMESH_STALL_LISTEN", stall_addr.clone()),
        ("PAYMESH_STALL_PAGE_LISTEN", page_addr.clone()),
        // The services this test does not call listen where the kernel says: a fixed default
        // (billing's 50054) can be a client socket's port (a clean-clone CI run failed so).
        ("PAYMESH_PAYMENT_LISTEN", "127.0.0.1:0".to_string()),
        ("PAYMESH_PAYMENT_WEBHOOK_LISTEN", "127.0.0.1:0".to_string()),
        ("PAYMESH_BILLING_LISTEN", "127.0.0.1:0".to_string()),
        ("PAYMESH_SETTLEMENT_LISTEN", "127.0.0.1:0".to_string()),
        (
            "PAYMESH_TELEMETRY_METRICS_LISTEN",
            "127.0.0.1:0".to_string(),
        ),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .arg("dev")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _dev = Dev(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("paymesh dev exited before it was up")
            .unwrap();
        if line.contains("paymesh dev is up") {
            break;
        }
    }
    // Keep draining dev's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    // The keys `paymesh dev` wrote are the standard forms OpenSSL reads.
    for (file, pubin) in [
        ("private/mesh.pem", false),
        ("private/operator.pem", false),
        ("public/mesh.pem", true),
        ("public/operator.pem", true),
    ] {
        let mut openssl = Command::new("openssl");
        openssl.args(["pkey", "-noout", "-in"]).arg(dir.join(file));
        if pubin {
            openssl.arg("-pubin");
        }
        let out = openssl.output().unwrap();
        assert!(
            out.status.success(),
            "openssl refused {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_paymesh"))
            .arg("merchant")
            .args(args)
            .args(["--addr", &merchant_addr])
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "paymesh merchant {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let onboarded: serde_json::Value = serde_json::from_str(&cli(&[
        "onboard",
        "--kind",
        "vendor",
        "--business-name",
        "Hộ kinh doanh Nguyễn Thị Lan",
        "--trading-name",
        "Bun bo Co Lan",
        "--tax-code",
        "0300588569",
        "--owner-citizen-id",
        "079187001234",
        "--phone",
        "0901234567",
        "--address",
        "Sạp 45, chợ Đông Ba, Huế",
        "--market",
        "Chợ Đông Ba",
        "--stall",
        "A-45",
        "--mcc",
        "5812",
        "--bank-bin",
        "970436",
        "--account",
        "0011012345678",
    ]))
    .unwrap();
    assert_eq!(onboarded["status"], "PENDING_REVIEW");
    let cccd = onboarded["owner_citizen_id"].as_str().unwrap();
    assert!(!cccd.contains("187001"), "CCCD must be masked, got {cccd}");
    let id = onboarded["id"].as_str().unwrap().to_string();

    // Approval names the version reviewed: `show` prints its etag.
    let shown: serde_json::Value = serde_json::from_str(&cli(&["show", &id])).unwrap();
    let etag = shown["etag"].as_str().unwrap().to_string();
    assert!(!etag.is_empty());
    assert_eq!(onboarded["etag"], shown["etag"]);
    let approved: serde_json::Value = serde_json::from_str(&cli(&[
        "approve",
        &id,
        "--reason",
        "documents checked at the market office",
        "--etag",
        &etag,
    ]))
    .unwrap();
    assert_ne!(approved["etag"], shown["etag"]);
    assert_eq!(approved["status"], "ACTIVE");
    let va = approved["virtual_account_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!va.is_empty());

    let png = dir.join("qr.png");
    // JSON like every verb: the payload, and where the PNG went.
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&["qr", &id, "--png", png.to_str().unwrap()])).unwrap();
    assert_eq!(shown["png"], png.to_str().unwrap());
    let payload = shown["payload"].as_str().unwrap().to_string();
    let qr = vietqr::decode(&payload).unwrap();
    assert_eq!(qr.account(), Some(va.as_str()));
    let scanned = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .expect("zbarimg (Debian zbar-tools) is needed: infra/test.sh installs it");
    assert_eq!(String::from_utf8_lossy(&scanned.stdout).trim(), payload);

    // The merchant's own fee plan: set (answered in canonical form), refused when it does not
    // parse (exit 1, the field named on stderr), cleared, and audited.
    let planned: serde_json::Value = serde_json::from_str(&cli(&[
        "fee-plan",
        &id,
        "--plan",
        "percent:0.60,min:1000,cap:50000",
        "--reason",
        "market rate",
    ]))
    .unwrap();
    assert_eq!(planned["fee_plan"], "percent:0.6,min:1000,cap:50000");
    let bad = Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .args(["merchant", "fee-plan", &id, "--plan", "percent:101"])
        .args(["--reason", "too much", "--addr", &merchant_addr])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("fee_plan"),
        "{stderr}"
    );
    let cleared: serde_json::Value = serde_json::from_str(&cli(&[
        "fee-plan",
        &id,
        "--default",
        "--reason",
        "back to the default",
    ]))
    .unwrap();
    assert_eq!(cleared["fee_plan"], "");
    let audit: serde_json::Value = serde_json::from_str(&cli(&["audit", &id])).unwrap();
    let reasons: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "SET_FEE_PLAN")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "fee plan default -> percent:0.6,min:1000,cap:50000: market rate",
            "fee plan percent:0.6,min:1000,cap:50000 -> default: back to the default",
        ]
    );

    // The vendor's sign-in link to her stall page, and its QR as an image a phone scans.
    let link_png = dir.join("link.png");
    let link: serde_json::Value = serde_json::from_str(&cli(&[
        "link",
        &id,
        "--stall-addr",
        &stall_addr,
        "--png",
        link_png.to_str().unwrap(),
    ]))
    .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{page_addr}/signin?token=")),
        "{link}"
    );
    assert!(link["expire_time"].as_str().unwrap().ends_with('Z'));
    assert!(link["qr_text"].as_str().unwrap().contains('█'));
    assert_eq!(
        paymesh_testkit::fixtures::zbarimg(&std::fs::read(&link_png).unwrap()),
        url
    );
    let _ = std::fs::remove_dir_all(&dir);
}
