//! Merchant ids, their ledger accounts (from the ledger's chart of accounts), and virtual
//! account numbers.

use std::fmt;

use paymesh_ledger::chart::{MerchantAccount, NewAccount};
use paymesh_money::Id128;
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

/// The ledger accounts every merchant has, opened on approval: the chart's merchant payable
/// and receivable (`paymesh_ledger::chart::MerchantAccount`), which give the code, the balance
/// limit, the reference and the id derived from the merchant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAccount {
    /// What paymesh owes the merchant: credited by payments, debited by fees, refunds and
    /// payouts; may never go below zero.
    Payable,
    /// What the merchant owes paymesh when a refund or chargeback exceeds the payable balance.
    Receivable,
}

impl LedgerAccount {
    pub const ALL: [LedgerAccount; 2] = [LedgerAccount::Payable, LedgerAccount::Receivable];

    /// The chart's account of this kind.
    pub fn chart(self) -> MerchantAccount {
        match self {
            LedgerAccount::Payable => MerchantAccount::Payable,
            LedgerAccount::Receivable => MerchantAccount::Receivable,
        }
    }

    /// The account's id, as the chart derives it. (It cannot fail; the `Result` is kept for
    /// the callers written when it could.)
    pub fn id(self, merchant: MerchantId) -> anyhow::Result<Id128> {
        Ok(self.chart().id(merchant.uuid()))
    }
}

/// A merchant's ledger accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerAccounts {
    pub merchant: MerchantId,
    pub payable: Id128,
    pub receivable: Id128,
}

impl LedgerAccounts {
    /// The accounts to open, as the chart has them (a retry finds them: same ids, same fields).
    pub fn to_open(&self) -> Vec<NewAccount> {
        LedgerAccount::ALL
            .iter()
            .map(|a| a.chart().new_account(self.merchant.uuid()))
            .collect()
    }
}

impl MerchantId {
    /// This merchant's ledger accounts. The ids are derived from the merchant id, so a retry
    /// after a crash, or a second approval, finds the same accounts.
    pub fn ledger_accounts(self) -> LedgerAccounts {
        LedgerAccounts {
            merchant: self,
            payable: LedgerAccount::Payable.chart().id(self.0),
            receivable: LedgerAccount::Receivable.chart().id(self.0),
        }
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
    fn ledger_accounts_come_from_the_chart() {
        use paymesh_ledger::chart::AccountCode;
        let m = MerchantId::random();
        let accounts = m.ledger_accounts();
        assert_eq!(accounts, m.ledger_accounts());
        assert_ne!(accounts.payable, accounts.receivable);
        assert_ne!(
            accounts.payable,
            MerchantId::random().ledger_accounts().payable
        );
        assert_eq!(LedgerAccount::Payable.id(m).unwrap(), accounts.payable);
        let open = accounts.to_open();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].id, accounts.payable);
        assert_eq!(open[0].code, AccountCode::MerchantPayable);
        assert_eq!(open[1].id, accounts.receivable);
        assert_eq!(open[1].code, AccountCode::MerchantReceivable);
        for a in &open {
            assert!(a.reference.chars().count() <= 64);
            assert!(a.reference.contains(&m.to_string()));
        }
        // The ids merchants approved before the chart existed: SHA-256 of
        // "paymesh.merchant.v1/ledger-account/{payable|receivable}/{merchant id}", first 16
        // bytes (computed with Python's hashlib).
        let old = MerchantId::parse("3f2c9a7e-0b1d-4c55-9a0e-5d7b8c6f1a23").unwrap();
        assert_eq!(
            old.ledger_accounts().payable.to_string(),
            "01cfd6b3e60ad5a4d8fc3d782bdfd5a9"
        );
        assert_eq!(
            old.ledger_accounts().receivable.to_string(),
            "c9f3818edecb54b26d96f1ec1548eb9d"
        );
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
