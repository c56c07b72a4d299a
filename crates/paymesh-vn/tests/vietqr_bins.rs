//! Every bank BIN in the accepted VietQR vectors (`shared/formats/vietqr/vectors.json`) is on the
//! NAPAS/VietQR member list in `data/napas_banks.tsv`.

use std::path::PathBuf;

use paymesh_vn::BankBin;
use serde_json::Value;

/// The shared file when it exists, else the copy the vietqr crate keeps for its own tests.
fn vectors_path() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // crates/paymesh-vn → the repository → its parent folder, which holds `shared/`.
    let shared = manifest.join("../../../shared/formats/vietqr/vectors.json");
    if shared.exists() {
        shared
    } else {
        manifest.join("../../crates/vietqr/tests/data/vectors.json")
    }
}

#[test]
fn every_accepted_vectors_bin_is_a_listed_member() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let vectors: Vec<Value> = serde_json::from_str(&text).expect("vectors.json is a JSON array");

    let bins: Vec<&str> = vectors
        .iter()
        .filter(|v| v["expect"] == "accept")
        .filter_map(|v| v["fields"]["bank_bin"].as_str())
        .collect();
    assert!(
        bins.len() >= 10,
        "only {} BINs found in {}",
        bins.len(),
        path.display()
    );

    let unknown: Vec<_> = bins
        .iter()
        .filter(|bin| BankBin::parse(bin).is_err())
        .collect();
    assert!(
        unknown.is_empty(),
        "BINs missing from data/napas_banks.tsv: {unknown:?}"
    );

    // The BINs the vectors use, by name, as a readable check of the list's names.
    for (bin, short_name) in [
        ("970403", "Sacombank"),
        ("970415", "VietinBank"),
        ("970416", "ACB"),
        ("970422", "MBBank"),
        ("970423", "TPBank"),
        ("970436", "Vietcombank"),
        ("970454", "BVBank"),
        ("963388", "Timo"),
        ("971025", "MoMo"),
    ] {
        assert!(bins.contains(&bin), "{bin} is no longer in the vectors");
        assert_eq!(BankBin::parse(bin).unwrap().bank().short_name(), short_name);
    }
}
