//! Like `decode`, but the input is the part before "6304" and the target
//! appends a correct CRC, so the fuzzer gets past the checksum to the field
//! rules.
//!
//! Run: `cd crates/vietqr/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run decode_body`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut text = String::from_utf8_lossy(data).into_owned();
    text.push_str("6304");
    let crc = vietqr::crc::crc16_ccitt_false(text.as_bytes());
    text.push_str(&format!("{crc:04X}"));
    if let Ok(qr) = vietqr::decode(&text) {
        match qr.encode() {
            Ok(again) => assert_eq!(vietqr::decode(&again).ok(), Some(qr)),
            Err(e) => panic!("decoded {text:?} but cannot re-encode: {e}"),
        }
    }
});
