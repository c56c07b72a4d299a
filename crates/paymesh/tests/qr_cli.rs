//! `paymesh qr decode|encode` against the shared VietQR vectors.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

fn vectors() -> Vec<serde_json::Value> {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/formats/vietqr/vectors.json"
    );
    let copy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vietqr/tests/data/vectors.json"
    );
    let text = std::fs::read_to_string(shared)
        .or_else(|_| std::fs::read_to_string(copy))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn paymesh(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn decode_accepts_and_rejects_as_the_vectors_say() {
    let vectors = vectors();
    assert!(vectors.len() >= 20);
    for v in vectors {
        let qr = v["qr"].as_str().unwrap();
        let out = paymesh(&["qr", "decode", qr]);
        match v["expect"].as_str().unwrap() {
            "accept" => {
                assert!(
                    out.status.success(),
                    "{} rejected: {}",
                    v["id"],
                    String::from_utf8_lossy(&out.stderr)
                );
                let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                for key in [
                    "bank_bin",
                    "account",
                    "amount",
                    "purpose",
                    "bill_number",
                    "merchant_name",
                ] {
                    if let Some(want) = v["fields"].get(key) {
                        assert_eq!(&got[key], want, "{} field {key}", v["id"]);
                    }
                }
            }
            _ => {
                assert_eq!(out.status.code(), Some(1), "{} accepted", v["id"]);
                assert!(String::from_utf8_lossy(&out.stderr).starts_with("rejected: "));
            }
        }
    }
}

#[test]
fn encode_round_trips_through_decode_and_refuses_decimals_in_vnd() {
    let out = paymesh(&[
        "qr",
        "encode",
        "--bin",
        "970436",
        "--account",
        "0011001234567",
        "--amount",
        "150000",
        "--purpose",
        "Học phí tháng 9",
    ]);
    assert!(out.status.success());
    let payload = String::from_utf8(out.stdout).unwrap();
    let out = paymesh(&["qr", "decode", payload.trim()]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["amount"], "150000");
    assert_eq!(got["purpose"], "Học phí tháng 9");
    assert_eq!(got["point_of_initiation"], "dynamic");
    let out = paymesh(&[
        "qr",
        "encode",
        "--bin",
        "970436",
        "--account",
        "001",
        "--amount",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(1));
}
