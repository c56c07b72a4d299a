//! Fuzz the strict decoder: it must never panic, and whatever it accepts must
//! re-encode to a string that decodes to the same value.
//!
//! Run: `cd crates/vietqr/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run decode`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(qr) = vietqr::decode(&text) {
        match qr.encode() {
            Ok(again) => assert_eq!(vietqr::decode(&again).ok(), Some(qr)),
            Err(e) => panic!("decoded {text:?} but cannot re-encode: {e}"),
        }
    }
});
