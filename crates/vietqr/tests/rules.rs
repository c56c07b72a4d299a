//! The decoder's rules one by one, and the encoder refusing the same things.

use vietqr::crc::crc16_ccitt_false;
use vietqr::{
    ErrorKind, MerchantAccount, PointOfInitiation, Scheme, ServiceCode, VietQrBuilder, decode,
};

/// Appends "6304" and the right CRC.
fn with_crc(body: &str) -> String {
    let mut s = format!("{body}6304");
    let crc = crc16_ccitt_false(s.as_bytes());
    s.push_str(&format!("{crc:04X}"));
    s
}

/// A TLV with its character-counted length.
fn tlv(id: &str, value: &str) -> String {
    format!("{id}{:02}{value}", value.chars().count())
}

fn vietqr_template(bin: &str, account: &str, service: &str) -> String {
    tlv(
        "38",
        &format!(
            "{}{}{}",
            tlv("00", "A000000727"),
            tlv("01", &format!("{}{}", tlv("00", bin), tlv("01", account))),
            tlv("02", service)
        ),
    )
}

const HEAD: &str = "000201010212";

fn standard(rest: &str) -> String {
    with_crc(&format!(
        "{HEAD}{}{rest}",
        vietqr_template("970403", "0011012345678", "QRIBFTTA")
    ))
}

fn reject(payload: &str) -> (String, ErrorKind) {
    match decode(payload) {
        Ok(q) => panic!("accepted {payload:?}: {q:?}"),
        Err(e) => (e.field().to_owned(), e.kind().clone()),
    }
}

#[test]
fn minimal_payload_decodes() {
    let qr = decode(&standard("53037045802VN")).unwrap();
    assert_eq!(qr.point_of_initiation, PointOfInitiation::Dynamic);
    assert_eq!(qr.scheme(), Some(Scheme::VietQr));
    assert_eq!(qr.bank_bin(), Some("970403"));
    assert_eq!(qr.account(), Some("0011012345678"));
    assert_eq!(qr.service_code(), Some(ServiceCode::ToAccount));
    assert_eq!(qr.amount, None);
}

#[test]
fn crc_is_compared_ignoring_case() {
    let upper = "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8";
    let lower = upper.replace("6304BBB8", "6304bbb8");
    let mixed = upper.replace("6304BBB8", "6304bBb8");
    assert_eq!(decode(upper).unwrap(), decode(&lower).unwrap());
    assert_eq!(decode(upper).unwrap(), decode(&mixed).unwrap());
    // The encoder writes upper case.
    assert!(decode(upper).unwrap().encode().unwrap().ends_with("BBB8"));
}

#[test]
fn envelope_rules() {
    // 00 must come first.
    let s = with_crc(&format!(
        "010212000201{}53037045802VN",
        vietqr_template("970403", "1", "QRIBFTTA")
    ));
    assert_eq!(reject(&s), ("00".into(), ErrorKind::PayloadFormatNotFirst));
    assert_eq!(reject(""), ("00".into(), ErrorKind::PayloadFormatNotFirst));
    // 00 must be "01".
    let s = with_crc(&format!(
        "000202010212{}53037045802VN",
        vietqr_template("970403", "1", "QRIBFTTA")
    ));
    assert!(matches!(reject(&s), (f, ErrorKind::BadPayloadFormat(_)) if f == "00"));
    // 63 must be last.
    let s = format!("{}5802VN", standard("5303704"));
    assert_eq!(reject(&s), ("63".into(), ErrorKind::CrcNotLast));
    // 63 must be there.
    assert_eq!(
        reject("0002010102115303704"),
        ("63".into(), ErrorKind::CrcMissing)
    );
    // 63 must be four hex digits.
    let s = format!("{HEAD}6304+ABC");
    assert!(matches!(reject(&s), (f, ErrorKind::BadCrcFormat(_)) if f == "63"));
    let s = format!("{HEAD}6305ABCDE");
    assert!(matches!(reject(&s), (f, ErrorKind::BadCrcFormat(_)) if f == "63"));
    // A wrong CRC.
    let s = standard("53037045802VN").replace("5802VN", "5802VM");
    assert!(matches!(reject(&s), (f, ErrorKind::CrcMismatch { .. }) if f == "63"));
}

#[test]
fn layout_rules_name_the_field() {
    // Length past the end of the whole payload.
    assert!(matches!(
        reject("000201010212389"),
        (f, ErrorKind::TruncatedHeader { at: 12 }) if f == "payload"
    ));
    assert!(matches!(
        reject("0002010102125920abc"),
        (f, ErrorKind::LengthPastEnd { declared: 20, available: 3 }) if f == "59"
    ));
    // Non-digit length inside the beneficiary organisation.
    let inner = format!("{}{}", tlv("00", "A000000727"), "01200006970403");
    let s = with_crc(&format!("{HEAD}38{:02}{inner}53037045802VN", inner.len()));
    let (field, kind) = reject(&s);
    assert_eq!(field, "38/01");
    assert_eq!(
        kind,
        ErrorKind::LengthPastEnd {
            declared: 20,
            available: 10
        }
    );
    let beneficiary = "000697040301x2ab";
    let inner = format!("{}{}", tlv("00", "A000000727"), tlv("01", beneficiary));
    let s = with_crc(&format!("{HEAD}{}53037045802VN", tlv("38", &inner)));
    assert_eq!(
        reject(&s),
        ("38/01/01".into(), ErrorKind::NonDigitLength { at: 12 })
    );
    // Non-digit id.
    let s = with_crc(&format!("{HEAD}AB02xx"));
    assert_eq!(
        reject(&s),
        ("payload".into(), ErrorKind::NonDigitId { at: 12 })
    );
    // Empty value, duplicate id, control character.
    let s = with_crc(&format!("{HEAD}5900"));
    assert_eq!(reject(&s), ("59".into(), ErrorKind::EmptyValue));
    let s = standard("53037045802VN5802VN");
    assert_eq!(reject(&s), ("58".into(), ErrorKind::DuplicateId));
    let s = standard("53037045802VN5903a\tb");
    assert_eq!(
        reject(&s),
        ("59".into(), ErrorKind::ControlCharacter { at: 1 })
    );
}

#[test]
fn field_rules() {
    let base = |bin: &str, account: &str, service: &str, rest: &str| {
        with_crc(&format!(
            "{HEAD}{}{rest}",
            vietqr_template(bin, account, service)
        ))
    };
    let ok = "53037045802VN";
    assert!(matches!(
        reject(&base("97040", "1", "QRIBFTTA", ok)),
        (f, ErrorKind::BadBin(_)) if f == "38/01/00"
    ));
    assert!(matches!(
        reject(&base("97040A", "1", "QRIBFTTA", ok)),
        (f, ErrorKind::BadBin(_)) if f == "38/01/00"
    ));
    assert!(matches!(
        reject(&base("970403", "12345678901234567890", "QRIBFTTA", ok)),
        (f, ErrorKind::BadAccount(_)) if f == "38/01/01"
    ));
    assert!(matches!(
        reject(&base("970403", "12-34", "QRIBFTTA", ok)),
        (f, ErrorKind::BadAccount(_)) if f == "38/01/01"
    ));
    assert!(matches!(
        reject(&base("970403", "1234", "QRPUSH", ok)),
        (f, ErrorKind::BadServiceCode(_)) if f == "38/02"
    ));
    let std = |rest: &str| base("970403", "1234", "QRIBFTTA", rest);
    assert!(matches!(
        reject(&std("5303704540510.505802VN")),
        (f, ErrorKind::DecimalsForVnd(_)) if f == "54"
    ));
    // 840 (USD) may have decimals.
    assert!(decode(&std("5303840540510.505802US")).is_ok());
    for bad in [
        "1.2.3",
        ".5",
        "5.",
        "1e5",
        "-100",
        "12345678901234",
        "1 000",
    ] {
        let s = std(&format!("5303840{}5802US", tlv("54", bad)));
        assert!(
            matches!(reject(&s), (f, ErrorKind::BadAmount(_)) if f == "54"),
            "{bad}"
        );
    }
    assert!(matches!(
        reject(&std("52035995303704")),
        (f, ErrorKind::BadMcc(_)) if f == "52"
    ));
    assert!(matches!(
        reject(&std("5303VND5802VN")),
        (f, ErrorKind::BadCurrency(_)) if f == "53"
    ));
    assert!(matches!(
        reject(&std("53037045802vn")),
        (f, ErrorKind::BadCountry(_)) if f == "58"
    ));
    assert_eq!(
        reject(&std("5802VN")),
        ("53".into(), ErrorKind::Missing("currency"))
    );
    assert_eq!(
        reject(&std("5303704")),
        ("58".into(), ErrorKind::Missing("country"))
    );
    // No 01.
    let s = with_crc(&format!(
        "000201{}53037045802VN",
        vietqr_template("970403", "1", "QRIBFTTA")
    ));
    assert_eq!(
        reject(&s),
        ("01".into(), ErrorKind::Missing("point of initiation"))
    );
    // No merchant account at all.
    let s = with_crc(&format!("{HEAD}53037045802VN"));
    assert_eq!(reject(&s), ("payload".into(), ErrorKind::NoMerchantAccount));
    // A template without its GUID.
    let s = with_crc(&format!("{HEAD}{}53037045802VN", tlv("26", "0103abc")));
    assert_eq!(reject(&s), ("26/00".into(), ErrorKind::Missing("GUID")));
    // VietQR without a BIN.
    let inner = format!(
        "{}{}{}",
        tlv("00", "A000000727"),
        tlv("01", &tlv("01", "123")),
        tlv("02", "QRIBFTTA")
    );
    let s = with_crc(&format!("{HEAD}{}53037045802VN", tlv("38", &inner)));
    assert_eq!(
        reject(&s),
        ("38/01/00".into(), ErrorKind::Missing("acquirer BIN"))
    );
}

#[test]
fn unknown_ids_are_kept_in_order() {
    let beneficiary = format!(
        "{}{}{}",
        tlv("00", "970403"),
        tlv("01", "12345"),
        tlv("09", "extra")
    );
    let inner = format!(
        "{}{}{}{}",
        tlv("00", "A000000727"),
        tlv("01", &beneficiary),
        tlv("02", "QRIBFTTC"),
        tlv("05", "five")
    );
    let additional = format!(
        "{}{}{}{}",
        tlv("09", "ME"),
        tlv("08", "Thanh toán"),
        tlv("02", "0900000000"),
        tlv("50", "x")
    );
    let s = with_crc(&format!(
        "{HEAD}{}{}{}5303704{}5802VN{}{}{}",
        tlv("02", "4111111111111111"),
        tlv("38", &inner),
        tlv(
            "27",
            &format!("{}{}", tlv("00", "SG.PAYNOW"), tlv("01", "2"))
        ),
        tlv("99", "last"),
        tlv("62", &additional),
        tlv("64", "alt"),
        tlv("55", "01"),
    ));
    let qr = decode(&s).unwrap();
    assert_eq!(
        qr.unknown,
        vec![
            (99, "last".to_owned()),
            (64, "alt".to_owned()),
            (55, "01".to_owned())
        ]
    );
    assert_eq!(
        qr.additional.others,
        vec![
            (9, "ME".to_owned()),
            (2, "0900000000".to_owned()),
            (50, "x".to_owned())
        ]
    );
    assert_eq!(qr.additional.purpose.as_deref(), Some("Thanh toán"));
    let a = qr.vietqr_account().unwrap();
    assert_eq!(a.service_code, ServiceCode::ToCard);
    assert_eq!(a.beneficiary_others, vec![(9, "extra".to_owned())]);
    assert_eq!(a.others, vec![(5, "five".to_owned())]);
    assert_eq!(qr.merchant_accounts.len(), 3);
    assert_eq!(qr.merchant_accounts[0].scheme(), Scheme::Network(2));
    assert_eq!(
        qr.merchant_accounts[2].scheme(),
        Scheme::Other("SG.PAYNOW".into())
    );
    // The VietQR template is the primary account even when not first.
    assert_eq!(qr.scheme(), Some(Scheme::VietQr));
    // Re-encoding keeps every field.
    let again = decode(&qr.encode().unwrap()).unwrap();
    assert_eq!(again, qr);
}

#[test]
fn vnpay_template_is_kept_raw() {
    let qr = decode("00020101021126280010A000000775011001087990425204597753037045802VN5909MYPHAMHER6005HANOI62260311MY PHAM HER0707MPHER0163041C50").unwrap();
    assert_eq!(qr.scheme(), Some(Scheme::VnPayQr));
    assert_eq!(qr.vietqr_account(), None);
    let Some(MerchantAccount::Template(t)) = qr.primary_account() else {
        panic!("expected a template");
    };
    assert_eq!(t.id, 26);
    assert_eq!(t.guid(), Some("A000000775"));
    assert_eq!(t.raw().unwrap(), "0010A00000077501100108799042");
}

#[test]
fn lengths_count_characters() {
    let name = "Cửa hàng Bánh mì Hội An";
    assert_ne!(name.len(), name.chars().count());
    let s = standard(&format!("53037045802VN{}", tlv("59", name)));
    assert_eq!(decode(&s).unwrap().merchant_name.as_deref(), Some(name));
    // The same string with the byte count as length is rejected.
    let bytes = standard(&format!("53037045802VN59{}{name}", name.len()));
    assert!(decode(&bytes).is_err());
}

// --- encoder -------------------------------------------------------------------

fn builder() -> VietQrBuilder {
    VietQrBuilder::new("970403", "0011012345678")
}

#[test]
fn builder_reproduces_published_vectors() {
    assert_eq!(
        VietQrBuilder::new("970403", "9704031101234567")
            .service_code(ServiceCode::ToCard)
            .build()
            .unwrap(),
        "00020101021138600010A00000072701300006970403011697040311012345670208QRIBFTTC53037045802VN63044F52"
    );
    assert_eq!(
        VietQrBuilder::new("970416", "257678859")
            .amount_vnd(1000)
            .purpose("Chuyen tien")
            .build()
            .unwrap(),
        "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8"
    );
    assert_eq!(
        VietQrBuilder::new("971025", "PSP123456789000000")
            .reference_label("MOMOW2W12345678")
            .build()
            .unwrap(),
        "00020101021138620010A000000727013200069710250118PSP1234567890000000208QRIBFTTA53037045802VN62190515MOMOW2W123456786304821F"
    );
}

#[test]
fn builder_refuses_what_decoder_rejects() {
    let err = |b: VietQrBuilder| {
        let e = b.build().unwrap_err();
        (e.field().to_owned(), e.kind().clone())
    };
    assert!(matches!(
        err(VietQrBuilder::new("97040", "1")),
        (f, ErrorKind::BadBin(_)) if f == "38/01/00"
    ));
    assert!(matches!(
        err(VietQrBuilder::new("970403", "")),
        (f, ErrorKind::BadAccount(_)) if f == "38/01/01"
    ));
    assert!(matches!(
        err(builder().amount("1000.5")),
        (f, ErrorKind::DecimalsForVnd(_)) if f == "54"
    ));
    assert!(builder().amount("1000.5").currency("840").build().is_ok());
    assert!(matches!(
        err(builder().amount("1,000")),
        (f, ErrorKind::BadAmount(_)) if f == "54"
    ));
    assert!(matches!(
        err(builder().amount_vnd(12_345_678_901_234)),
        (f, ErrorKind::BadAmount(_)) if f == "54"
    ));
    assert!(matches!(
        err(builder().mcc("59")),
        (f, ErrorKind::BadMcc(_)) if f == "52"
    ));
    assert!(matches!(
        err(builder().currency("VND")),
        (f, ErrorKind::BadCurrency(_)) if f == "53"
    ));
    assert!(matches!(
        err(builder().country("Vietnam")),
        (f, ErrorKind::BadCountry(_)) if f == "58"
    ));
    assert_eq!(
        err(builder().merchant_name("x".repeat(100))),
        ("59".into(), ErrorKind::TooLong { len: 100, max: 99 })
    );
    assert_eq!(
        err(builder().merchant_city("")),
        ("60".into(), ErrorKind::EmptyValue)
    );
    assert_eq!(
        err(builder().purpose("dòng\nhai")),
        ("62/08".into(), ErrorKind::ControlCharacter { at: 4 })
    );
    // 62 as a whole over 99 characters, although each sub fits.
    let e = err(builder()
        .purpose("đ".repeat(50))
        .bill_number("b".repeat(45)));
    assert_eq!(e, ("62".into(), ErrorKind::TooLong { len: 103, max: 99 }));
    // Ids that belong to typed fields, or repeat.
    assert_eq!(
        err(builder().unknown_field(54, "1")),
        ("54".into(), ErrorKind::ReservedId)
    );
    assert_eq!(
        err(builder().unknown_field(100, "1")),
        ("100".into(), ErrorKind::ReservedId)
    );
    assert_eq!(
        err(builder().unknown_field(64, "a").unknown_field(64, "b")),
        ("64".into(), ErrorKind::DuplicateId)
    );
    assert_eq!(
        err(builder().additional_field(8, "x")),
        ("62/08".into(), ErrorKind::ReservedId)
    );
    // What the builder accepts, the decoder accepts and reads back.
    let qr = builder()
        .merchant_name("Cửa hàng Bánh mì Hội An")
        .merchant_city("Hà Nội")
        .purpose("Thanh toán đơn hàng")
        .unknown_field(64, "alt")
        .into_vietqr();
    assert_eq!(decode(&qr.encode().unwrap()).unwrap(), qr);
}

#[test]
fn point_of_initiation_defaults_follow_amount() {
    let s = builder().build().unwrap();
    assert_eq!(
        decode(&s).unwrap().point_of_initiation,
        PointOfInitiation::Static
    );
    let s = builder().amount_vnd(5).build().unwrap();
    assert_eq!(
        decode(&s).unwrap().point_of_initiation,
        PointOfInitiation::Dynamic
    );
    let s = builder()
        .amount_vnd(5)
        .point_of_initiation(PointOfInitiation::Static)
        .build()
        .unwrap();
    assert_eq!(
        decode(&s).unwrap().point_of_initiation,
        PointOfInitiation::Static
    );
}
