//! Every vector in `shared/formats/vietqr/vectors.json` (or the crate's copy).

use std::path::PathBuf;

use serde_json::Value;
use vietqr::{MerchantAccount, decode};

fn shared_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/formats/vietqr/vectors.json")
}

fn copy_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors.json")
}

/// The shared file when it exists, else the copy in `tests/data/`.
fn load_vectors() -> Vec<Value> {
    let path = if shared_path().exists() {
        shared_path()
    } else {
        copy_path()
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("vectors.json is JSON");
    json.as_array().expect("vectors.json is an array").clone()
}

#[test]
fn copy_matches_shared_file() {
    let shared = shared_path();
    if !shared.exists() {
        eprintln!("{} not found; using the copy only", shared.display());
        return;
    }
    let shared = std::fs::read(shared).unwrap();
    let copy = std::fs::read(copy_path()).unwrap();
    assert!(
        shared == copy,
        "tests/data/vectors.json differs from shared/formats/vietqr/vectors.json; copy it again"
    );
}

/// The decoded value of a `fields` key, or `None` when the payload lacks it.
fn field(qr: &vietqr::VietQr, key: &str) -> Option<String> {
    let add = &qr.additional;
    match key {
        "point_of_initiation" => Some(qr.point_of_initiation.code().to_owned()),
        "scheme" => qr.scheme().map(|s| s.name()),
        "bank_bin" => qr.bank_bin().map(str::to_owned),
        "account" => qr.account().map(str::to_owned),
        "service_code" => qr.service_code().map(|s| s.code().to_owned()),
        "merchant_id" => match qr.primary_account() {
            Some(MerchantAccount::Template(t)) => t.field(1).map(str::to_owned),
            _ => None,
        },
        "mcc" => qr.mcc.clone(),
        "currency" => Some(qr.currency.clone()),
        "amount" => qr.amount.clone(),
        "country" => Some(qr.country.clone()),
        "merchant_name" => qr.merchant_name.clone(),
        "merchant_city" => qr.merchant_city.clone(),
        "bill_number" => add.bill_number.clone(),
        "store_label" => add.store_label.clone(),
        "reference_label" => add.reference_label.clone(),
        "customer_label" => add.customer_label.clone(),
        "terminal_label" => add.terminal_label.clone(),
        "purpose" => add.purpose.clone(),
        other => panic!("vectors.json uses a field name this test does not map: {other}"),
    }
}

/// Keys that are optional in a payload: when a vector does not list one,
/// the decoder must report it absent.
const OPTIONAL_KEYS: &[&str] = &[
    "bank_bin",
    "account",
    "service_code",
    "merchant_id",
    "mcc",
    "amount",
    "merchant_name",
    "merchant_city",
    "bill_number",
    "store_label",
    "reference_label",
    "customer_label",
    "terminal_label",
    "purpose",
];

fn is_field_path(token: &str) -> bool {
    !token.is_empty()
        && token
            .split('/')
            .all(|part| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `why` reads "<field path>[:] <rule>[: explanation]" or just "<rule>";
/// the error must name that field, and its message must contain the rule.
fn check_reject(id: &str, err: &vietqr::Error, why: &str) {
    let (field, rule) = match why.split_once(' ') {
        Some((first, rest)) if is_field_path(first.trim_end_matches(':')) => {
            (Some(first.trim_end_matches(':')), rest.trim())
        }
        _ => (None, why.trim()),
    };
    let rule = rule.split(':').next().unwrap_or(rule).trim().to_lowercase();
    if let Some(field) = field {
        assert_eq!(
            err.field(),
            field,
            "{id}: error {err} names the wrong field"
        );
    }
    assert!(
        err.to_string().to_lowercase().contains(&rule),
        "{id}: error {err:?} ({err}) does not say {rule:?}"
    );
}

#[test]
fn every_vector() {
    let vectors = load_vectors();
    assert!(vectors.len() >= 22, "expected at least 22 vectors");
    let mut accepted = 0;
    let mut rejected = 0;
    for v in &vectors {
        let id = v["id"].as_str().expect("id");
        let qr = v["qr"].as_str().expect("qr");
        match v["expect"].as_str().expect("expect") {
            "accept" => {
                let decoded = decode(qr).unwrap_or_else(|e| panic!("{id}: rejected: {e}"));
                let fields = v["fields"].as_object().expect("fields");
                for (key, want) in fields {
                    let want = want.as_str().expect("field values are strings");
                    assert_eq!(
                        field(&decoded, key).as_deref(),
                        Some(want),
                        "{id}: field {key}"
                    );
                }
                for key in OPTIONAL_KEYS {
                    if !fields.contains_key(*key) {
                        assert_eq!(
                            field(&decoded, key),
                            None,
                            "{id}: {key} is not in the vector's fields"
                        );
                    }
                }
                // Re-encoding the decoded model gives a string that decodes to the same model.
                let again = decoded
                    .encode()
                    .unwrap_or_else(|e| panic!("{id}: re-encode: {e}"));
                assert_eq!(decode(&again).as_ref(), Ok(&decoded), "{id}: re-encode");
                accepted += 1;
            }
            "reject" => {
                let err = match decode(qr) {
                    Ok(q) => panic!("{id}: accepted, should be rejected: {q:?}"),
                    Err(e) => e,
                };
                for why in v["why"].as_array().expect("why") {
                    check_reject(id, &err, why.as_str().expect("why is text"));
                }
                rejected += 1;
            }
            other => panic!("{id}: unknown expect {other:?}"),
        }
    }
    eprintln!("{accepted} accepted, {rejected} rejected");
}

/// Canonical-order vectors re-encode byte for byte.
#[test]
fn canonical_vectors_reencode_exactly() {
    for v in load_vectors() {
        if v["expect"] != "accept" {
            continue;
        }
        let qr = v["qr"].as_str().expect("qr");
        let decoded = decode(qr).expect("accepted");
        let again = decoded.encode().expect("encodes");
        let id = v["id"].as_str().expect("id");
        if id.starts_with("shinxz12") {
            // Published with 53/54/58 before 38: same fields, different order.
            assert_ne!(again, qr);
        } else {
            assert_eq!(again, qr, "{id}");
        }
    }
}
