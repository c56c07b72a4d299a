mod common;
use common::*;
#[test]
fn dump() {
    let s = sample();
    for (f, name) in [(paymesh_formats::Format::Camt053, "s.053.xml"), (paymesh_formats::Format::Camt054, "s.054.xml"), (paymesh_formats::Format::Mt940, "s.mt940"), (paymesh_formats::Format::Csv, "s.csv")] {
        std::fs::write(format!("/tmp/pf-{name}"), write(f, &s).unwrap()).unwrap();
    }
}
