//! Merchant ids, the ledger account ids derived from them, and virtual account numbers.

use std::fmt;

use paymesh_money::Id128;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A merchant's id: a random UUID, written in its canonical lower-case hyphenated form
/// (`3f2c9a7e-…`), which is also the id in its principal `merchant:{id}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantId(Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerchantIdError {
    #[error("is empty")]
    Empty,
    #[error("must be a merchant id: a UUID in lower-case hyphenated form")]
    Format,
}

impl MerchantId {
    pub fn random() -> MerchantId {
        MerchantId(Uuid::new_v4())
    }

    /// Parses the canonical form only, so that one merchant has one spelling (and one
    /// principal).
    pub fn parse(input: &str) -> Result<MerchantId, MerchantIdError> {
        if input.is_empty() {
            return Err(MerchantIdError::Empty);
        }
        if input.len() != 36 {
            return Err(MerchantIdError::Format);
        }
        let uuid = Uuid::try_parse(input).map_err(|_| MerchantIdError::Format)?;
        let id = MerchantId(uuid);
        if id.to_string() != input {
            return Err(MerchantIdError::Format);
        }
        Ok(id)
    }

    pub fn from_uuid(uuid: Uuid) -> MerchantId {
        MerchantId(uuid)
    }

    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerchantId({self})")
    }
}

/// The ledger accounts every merchant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAccount {
    /// What paymesh owes the merchant: credited by payments, debited by fees, refunds and
    /// payouts; may never go below zero (`debits_must_not_exceed_credits`).
    Payable,
    /// What the merchant owes paymesh when a refund or chargeback exceeds the payable balance:
    /// debited then, credited when recovered; never credited beyond what is owed
    /// (`credits_must_not_exceed_debits`).
    Receivable,
}

impl LedgerAccount {
    pub const ALL: [LedgerAccount; 2] = [LedgerAccount::Payable, LedgerAccount::Receivable];

    /// The ledger's account code (1 bank clearing, 2 merchant payable, 3 fee revenue, …).
    pub fn code(self) -> u32 {
        match self {
            LedgerAccount::Payable => 2,
            LedgerAccount::Receivable => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LedgerAccount::Payable => "payable",
            LedgerAccount::Receivable => "receivable",
        }
    }

    /// The account's id: the first 16 bytes of SHA-256 over a fixed label, the account's name
    /// and the merchant id. A retry after a crash derives the same ids, so the ledger answers
    /// EXISTS instead of opening a second set.
    pub fn id(self, merchant: MerchantId) -> anyhow::Result<Id128> {
        let digest = Sha256::digest(format!(
            "paymesh.merchant.v1/ledger-account/{}/{merchant}",
            self.name()
        ));
        let bytes = digest.get(..16).unwrap_or_default();
        Id128::from_bytes(bytes).map_err(|e| anyhow::anyhow!("derived ledger account id: {e}"))
    }

    /// The account's reference in the ledger (at most 64 characters).
    pub fn reference(self, merchant: MerchantId) -> String {
        format!("merchant {merchant} {}", self.name())
    }
}

/// Digits in the sequence part of a virtual account number.
pub const VIRTUAL_ACCOUNT_SEQUENCE_DIGITS: usize = 10;

/// A virtual account number: the configured prefix, the sequence number zero-padded to ten
/// digits, and a Luhn check digit over both (so a mistyped number is caught when a bank
/// statement is matched). With a prefix of at most 8 digits it is at most 19 digits, the
/// VietQR limit.
pub fn virtual_account_number(prefix: &str, sequence: i64) -> anyhow::Result<String> {
    anyhow::ensure!(
        !prefix.is_empty() && prefix.len() <= 8 && prefix.bytes().all(|b| b.is_ascii_digit()),
        "virtual account prefix must be 1-8 digits"
    );
    anyhow::ensure!(
        (1..=9_999_999_999).contains(&sequence),
        "virtual account sequence {sequence} is out of range"
    );
    let body = format!(
        "{prefix}{sequence:0width$}",
        width = VIRTUAL_ACCOUNT_SEQUENCE_DIGITS
    );
    let check = luhn_check_digit(&body);
    Ok(format!("{body}{check}"))
}

/// The Luhn check digit for a string of ASCII digits.
pub fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0') % 10);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Whether `number` ends in the right Luhn check digit.
pub fn luhn_valid(number: &str) -> bool {
    match number.len().checked_sub(1) {
        Some(last) if number.bytes().all(|b| b.is_ascii_digit()) && last > 0 => {
            let (body, check) = number.split_at(last);
            check.as_bytes().first().map(|b| b - b'0') == Some(luhn_check_digit(body))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merchant_ids_have_one_spelling() {
        let id = MerchantId::random();
        let text = id.to_string();
        assert_eq!(MerchantId::parse(&text), Ok(id));
        assert_eq!(
            MerchantId::parse(&text.to_uppercase()),
            Err(MerchantIdError::Format)
        );
        assert_eq!(
            MerchantId::parse(&text.replace('-', "")),
            Err(MerchantIdError::Format)
        );
        assert_eq!(MerchantId::parse(""), Err(MerchantIdError::Empty));
        assert_eq!(
            MerchantId::parse("not-a-merchant-id-at-all-no-not-one"),
            Err(MerchantIdError::Format)
        );
        // A principal can carry it.
        assert!(paymesh_platform::auth::Principal::parse(&format!("merchant:{id}")).is_ok());
    }

    #[test]
    fn ledger_account_ids_are_derived_and_distinct() {
        let m = MerchantId::random();
        let payable = LedgerAccount::Payable.id(m).unwrap();
        assert_eq!(payable, LedgerAccount::Payable.id(m).unwrap());
        assert_ne!(payable, LedgerAccount::Receivable.id(m).unwrap());
        assert_ne!(
            payable,
            LedgerAccount::Payable.id(MerchantId::random()).unwrap()
        );
        for a in LedgerAccount::ALL {
            assert!(a.reference(m).chars().count() <= 64);
        }
    }

    #[test]
    fn luhn() {
        // The textbook example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit("7992739871"), 3);
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid("7"));
        assert!(!luhn_valid("12a4"));
    }

    #[test]
    fn virtual_account_numbers() {
        let n = virtual_account_number("8868", 1).unwrap();
        assert_eq!(&n[..14], "88680000000001");
        assert_eq!(n.len(), 15);
        assert!(luhn_valid(&n));
        let longest = virtual_account_number("12345678", 9_999_999_999).unwrap();
        assert_eq!(longest.len(), 19);
        assert!(virtual_account_number("123456789", 1).is_err());
        assert!(virtual_account_number("", 1).is_err());
        assert!(virtual_account_number("88", 0).is_err());
        assert!(virtual_account_number("88", 10_000_000_000).is_err());
    }

    proptest! {
        #[test]
        fn a_single_wrong_digit_is_caught(seq in 1i64..9_999_999_999, pos in 0usize..14, delta in 1u8..10) {
            let n = virtual_account_number("8868", seq).unwrap();
            let mut bytes = n.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(!luhn_valid(&typo));
        }
    }
}
