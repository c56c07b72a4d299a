//! Property tests: encode→decode round-trips, and decode never panics.

use proptest::prelude::*;
use vietqr::crc::crc16_ccitt_false;
use vietqr::{PointOfInitiation, ServiceCode, VietQrBuilder, decode};

/// Letters of the Vietnamese alphabet with every tone mark (precomposed, NFC),
/// plus digits, space and some punctuation.
const VIET_LOWER: &str =
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ";

fn viet_chars() -> Vec<char> {
    let mut chars: Vec<char> = VIET_LOWER.chars().collect();
    chars.extend(VIET_LOWER.chars().flat_map(char::to_uppercase));
    chars.extend("0123456789 .,-/&'()".chars());
    chars
}

/// Vietnamese text of `min..=max` characters.
fn viet_text(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(viet_chars()), min..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

/// An amount that is valid for the currency: whole dong for VND (704),
/// two decimals for USD (840). At most 13 characters either way.
fn currency_and_amount() -> impl Strategy<Value = (String, Option<String>)> {
    prop_oneof![
        proptest::option::of(0u64..=9_999_999_999_999)
            .prop_map(|a| ("704".to_owned(), a.map(|a| a.to_string()))),
        proptest::option::of((0u64..=9_999_999_999, 0u8..100)).prop_map(|a| (
            "840".to_owned(),
            a.map(|(whole, cents)| format!("{whole}.{cents:02}"))
        )),
    ]
}

#[derive(Debug, Clone)]
struct Input {
    bin: String,
    account: String,
    card: bool,
    poi: Option<bool>,
    currency: String,
    amount: Option<String>,
    mcc: Option<String>,
    name: Option<String>,
    city: Option<String>,
    purpose: Option<String>,
    bill: Option<String>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        (
            "[0-9]{6}",
            "[A-Za-z0-9]{1,19}",
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            currency_and_amount(),
            proptest::option::of("[0-9]{4}"),
        ),
        (
            proptest::option::of(viet_text(1, 60)),
            proptest::option::of(viet_text(1, 40)),
            proptest::option::of(viet_text(1, 50)),
            proptest::option::of("[A-Z0-9]{1,30}"),
        ),
    )
        .prop_map(
            |((bin, account, card, poi, (currency, amount), mcc), (name, city, purpose, bill))| {
                Input {
                    bin,
                    account,
                    card,
                    poi,
                    currency,
                    amount,
                    mcc,
                    name,
                    city,
                    purpose,
                    bill,
                }
            },
        )
}

fn build(i: &Input) -> VietQrBuilder {
    let mut b = VietQrBuilder::new(i.bin.clone(), i.account.clone()).currency(i.currency.clone());
    if i.card {
        b = b.service_code(ServiceCode::ToCard);
    }
    if let Some(dynamic) = i.poi {
        b = b.point_of_initiation(if dynamic {
            PointOfInitiation::Dynamic
        } else {
            PointOfInitiation::Static
        });
    }
    if let Some(v) = &i.amount {
        b = b.amount(v.clone());
    }
    if let Some(v) = &i.mcc {
        b = b.mcc(v.clone());
    }
    if let Some(v) = &i.name {
        b = b.merchant_name(v.clone());
    }
    if let Some(v) = &i.city {
        b = b.merchant_city(v.clone());
    }
    if let Some(v) = &i.purpose {
        b = b.purpose(v.clone());
    }
    if let Some(v) = &i.bill {
        b = b.bill_number(v.clone());
    }
    b
}

/// The accepted vectors' strings, from the crate's copy of vectors.json.
fn valid_payloads() -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("data/vectors.json")).expect("vectors.json");
    json.as_array()
        .expect("array")
        .iter()
        .filter(|v| v["expect"] == "accept")
        .filter_map(|v| v["qr"].as_str().map(str::to_owned))
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        prop::char::range('0', '9'),
        prop::sample::select(vec![
            'A',
            'Q',
            '.',
            ' ',
            'đ',
            'ấ',
            '\n',
            '\u{0}',
            '\u{10FFFF}'
        ]),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0usize..12).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(s: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % n);
            }
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % n] = c,
            Edit::Truncate(i) => chars.truncate(i % (chars.len() + 1)),
            Edit::Duplicate(i, len) if !chars.is_empty() => {
                let start = i % n;
                let end = (start + len).min(chars.len());
                let copy: Vec<char> = chars[start..end].to_vec();
                chars.splice(start..start, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Whatever decodes must re-encode, and the re-encoded string must decode to the same.
fn check_decoded_is_encodable(s: &str) -> Result<(), TestCaseError> {
    if let Ok(qr) = decode(s) {
        let again = qr.encode();
        prop_assert!(again.is_ok(), "decoded {s:?} but cannot encode: {again:?}");
        if let Ok(again) = again {
            prop_assert_eq!(decode(&again), Ok(qr));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_round_trips(i in input()) {
        let qr = build(&i).into_vietqr();
        let payload = qr.encode();
        prop_assert!(payload.is_ok(), "{:?}", payload);
        let payload = payload.unwrap();
        let decoded = decode(&payload);
        prop_assert_eq!(decoded.as_ref(), Ok(&qr));
        // And the fields come back exactly as given.
        let decoded = decoded.unwrap();
        prop_assert_eq!(decoded.bank_bin(), Some(i.bin.as_str()));
        prop_assert_eq!(decoded.account(), Some(i.account.as_str()));
        prop_assert_eq!(decoded.encode(), Ok(payload));
        prop_assert_eq!(decoded.amount, i.amount);
        prop_assert_eq!(decoded.merchant_name, i.name);
        prop_assert_eq!(decoded.merchant_city, i.city);
        prop_assert_eq!(decoded.additional.purpose, i.purpose);
    }

    /// Arbitrary builder input (any text, any length): whatever `build` accepts decodes back.
    #[test]
    fn builder_accepts_only_decodable(
        bin in ".{0,8}",
        account in ".{0,22}",
        amount in proptest::option::of("[0-9.]{0,15}"),
        name in proptest::option::of(".{0,110}"),
        purpose in proptest::option::of(".{0,110}"),
    ) {
        let mut b = VietQrBuilder::new(bin, account);
        if let Some(a) = amount { b = b.amount(a); }
        if let Some(n) = name { b = b.merchant_name(n); }
        if let Some(p) = purpose { b = b.purpose(p); }
        let qr = b.into_vietqr();
        if let Ok(payload) = qr.encode() {
            prop_assert_eq!(decode(&payload), Ok(qr));
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = decode(&s);
    }

    #[test]
    fn decode_never_panics_on_tlv_like_strings(s in "[0-9A-Z.đ ]{0,300}") {
        let _ = decode(&s);
        let body = format!("000201{s}6304");
        let crc = crc16_ccitt_false(body.as_bytes());
        let s = format!("{body}{crc:04X}");
        check_decoded_is_encodable(&s)?;
    }

    #[test]
    fn decode_never_panics_on_mutated_vectors(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
        fix_crc in any::<bool>(),
    ) {
        let payloads = valid_payloads();
        let original = which.get(&payloads);
        let mutated = if fix_crc {
            // Mutate the part before "6304" and write a correct CRC, so the
            // mutation reaches the field rules instead of failing the CRC.
            let body = original.get(..original.len() - 8).unwrap_or_default();
            let body = format!("{}6304", apply(body, &edits));
            let crc = crc16_ccitt_false(body.as_bytes());
            format!("{body}{crc:04X}")
        } else {
            apply(original, &edits)
        };
        check_decoded_is_encodable(&mutated)?;
    }
}
