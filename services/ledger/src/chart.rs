//! The chart of accounts: what each [`AccountCode`] means, and the accounts every service
//! opens and posts to, with ids derived from what they belong to.
//!
//! An account id is the first 16 bytes of SHA-256 over a fixed label and the owner's key
//! (a merchant's UUID, a bank's BIN, a channel's id, or nothing for paymesh's own accounts),
//! so every service finds the same account without asking, and a retried opening answers
//! EXISTS instead of opening a second one.
//!
//! | code | account | one per | normal side | limit |
//! |---|---|---|---|---|
//! | 1 `BANK_CLEARING` | [`SystemAccount::BankClearing`] | bank (BIN) | debit | – |
//! | 2 `MERCHANT_PAYABLE` | [`MerchantAccount::Payable`] | merchant | credit | debits ≤ credits |
//! | 3 `FEE_REVENUE` | [`SystemAccount::FeeRevenue`] | – | credit | – |
//! | 4 `MERCHANT_RECEIVABLE` | [`MerchantAccount::Receivable`] | merchant | debit | credits ≤ debits |
//! | 5 `SUSPENSE` | [`SystemAccount::Suspense`] | – | credit | – |
//! | 6 `BILLER_PAYABLE` | [`MerchantAccount::BillerPayable`] | biller | credit | debits ≤ credits |
//! | 7 `CHANNEL_CLEARING` | [`SystemAccount::ChannelClearing`] | payer channel | debit | – |
//! | 8 `BANK_PAYOUT` | [`SystemAccount::BankPayout`] | bank (BIN) | credit | debits ≤ credits |
//! | 9 `REFUNDS_PAYABLE` | [`SystemAccount::RefundsPayable`] | – | credit | debits ≤ credits |

use paymesh_money::Id128;
use paymesh_proto::ledger::v1 as pb;
pub use paymesh_proto::ledger::v1::AccountCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::validate::REFERENCE_CHARS_MAX;

/// The currency the chart's accounts are opened in.
pub const CURRENCY_CODE: &str = "VND";

/// Every code of the chart, in number order (UNSPECIFIED is not one).
pub const CODES: [AccountCode; 9] = [
    AccountCode::BankClearing,
    AccountCode::MerchantPayable,
    AccountCode::FeeRevenue,
    AccountCode::MerchantReceivable,
    AccountCode::Suspense,
    AccountCode::BillerPayable,
    AccountCode::ChannelClearing,
    AccountCode::BankPayout,
    AccountCode::RefundsPayable,
];

/// The side an account's balance normally sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// An asset: balance = debits − credits.
    Debit,
    /// A liability or revenue: balance = credits − debits.
    Credit,
}

/// The balance limit an account is opened with (the two ledger flags exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceLimit {
    None,
    /// `debits_must_not_exceed_credits`: the account never goes below zero on its credit side.
    DebitsMustNotExceedCredits,
    /// `credits_must_not_exceed_debits`: the account never goes below zero on its debit side.
    CreditsMustNotExceedDebits,
}

impl BalanceLimit {
    pub fn to_wire(self) -> pb::AccountFlags {
        pb::AccountFlags {
            debits_must_not_exceed_credits: self == BalanceLimit::DebitsMustNotExceedCredits,
            credits_must_not_exceed_debits: self == BalanceLimit::CreditsMustNotExceedDebits,
        }
    }
}

/// What a code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    pub code: AccountCode,
    /// What the account holds.
    pub holds: &'static str,
    pub normal_side: Side,
    /// The limit the chart opens it with.
    pub limit: BalanceLimit,
}

/// What `code` means; `None` for UNSPECIFIED.
pub fn meaning(code: AccountCode) -> Option<Meaning> {
    use AccountCode as C;
    use BalanceLimit as L;
    let (holds, normal_side, limit) = match code {
        C::Unspecified => return None,
        C::BankClearing => (
            "money an acquiring bank has received for paymesh and owes it (per BIN)",
            Side::Debit,
            L::None,
        ),
        C::MerchantPayable => (
            "what paymesh owes a merchant for QR payments",
            Side::Credit,
            L::DebitsMustNotExceedCredits,
        ),
        C::FeeRevenue => ("paymesh's fee income", Side::Credit, L::None),
        C::MerchantReceivable => (
            "what a merchant owes paymesh when refunds or chargebacks exceed its payable",
            Side::Debit,
            L::CreditsMustNotExceedDebits,
        ),
        C::Suspense => (
            "money received that is not matched to a payment or merchant yet",
            Side::Credit,
            L::None,
        ),
        C::BillerPayable => (
            "what paymesh owes a biller for bills paid through payer channels",
            Side::Credit,
            L::DebitsMustNotExceedCredits,
        ),
        C::ChannelClearing => (
            "what a payer channel owes paymesh for the bills it collected",
            Side::Debit,
            L::None,
        ),
        C::BankPayout => (
            "payouts and refunds told to a bank (per BIN) and not yet confirmed by it",
            Side::Credit,
            L::DebitsMustNotExceedCredits,
        ),
        C::RefundsPayable => (
            "refunds accepted for payers and not yet sent to the bank",
            Side::Credit,
            L::DebitsMustNotExceedCredits,
        ),
    };
    Some(Meaning {
        code,
        holds,
        normal_side,
        limit,
    })
}

/// An account to open (see [`crate::client::LedgerClient::open_accounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub id: Id128,
    pub code: AccountCode,
    pub limit: BalanceLimit,
    pub currency_code: String,
    /// At most 64 characters.
    pub reference: String,
}

impl NewAccount {
    /// An account of the chart: `code`'s limit, in the chart's currency.
    pub fn of_chart(id: Id128, code: AccountCode, reference: String) -> NewAccount {
        NewAccount {
            id,
            code,
            limit: meaning(code).map_or(BalanceLimit::None, |m| m.limit),
            currency_code: CURRENCY_CODE.to_owned(),
            reference,
        }
    }

    pub fn to_wire(&self) -> pb::Account {
        pb::Account {
            id: self.id.to_bytes().to_vec(),
            currency_code: self.currency_code.clone(),
            code: self.code as i32,
            flags: Some(self.limit.to_wire()),
            reference: self.reference.clone(),
        }
    }
}

/// The accounts a merchant (vendor or biller, by its UUID in the merchant service) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantAccount {
    /// `MERCHANT_PAYABLE`: what paymesh owes it for QR payments.
    Payable,
    /// `MERCHANT_RECEIVABLE`: what it owes paymesh when refunds exceed its payable balance.
    Receivable,
    /// `BILLER_PAYABLE`: what paymesh owes a biller for bills paid through payer channels.
    BillerPayable,
}

impl MerchantAccount {
    pub const ALL: [MerchantAccount; 3] = [
        MerchantAccount::Payable,
        MerchantAccount::Receivable,
        MerchantAccount::BillerPayable,
    ];

    pub fn code(self) -> AccountCode {
        match self {
            MerchantAccount::Payable => AccountCode::MerchantPayable,
            MerchantAccount::Receivable => AccountCode::MerchantReceivable,
            MerchantAccount::BillerPayable => AccountCode::BillerPayable,
        }
    }

    /// The name in the id derivation and the reference. `payable` and `receivable` are the
    /// names the merchant service derived its first ids with: they never change.
    pub fn name(self) -> &'static str {
        match self {
            MerchantAccount::Payable => "payable",
            MerchantAccount::Receivable => "receivable",
            MerchantAccount::BillerPayable => "biller-payable",
        }
    }

    pub fn limit(self) -> BalanceLimit {
        meaning(self.code()).map_or(BalanceLimit::None, |m| m.limit)
    }

    /// The account's id: SHA-256 over `paymesh.merchant.v1/ledger-account/{name}/{merchant}`
    /// (the UUID lower-case and hyphenated), first 16 bytes.
    pub fn id(self, merchant: Uuid) -> Id128 {
        derive(&format!(
            "paymesh.merchant.v1/ledger-account/{}/{}",
            self.name(),
            merchant.hyphenated()
        ))
    }

    /// The account's reference in the ledger: `merchant {uuid} {name}` (at most 64 characters).
    pub fn reference(self, merchant: Uuid) -> String {
        format!("merchant {} {}", merchant.hyphenated(), self.name())
    }

    pub fn new_account(self, merchant: Uuid) -> NewAccount {
        NewAccount::of_chart(self.id(merchant), self.code(), self.reference(merchant))
    }
}

/// The id of a merchant's account of `kind`.
pub fn merchant_account(kind: MerchantAccount, merchant: Uuid) -> Id128 {
    kind.id(merchant)
}

/// paymesh's own accounts: one per bank, per payer channel, or one in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemAccount<'a> {
    /// `BANK_CLEARING` of the bank with this 6-digit BIN.
    BankClearing { bin: &'a str },
    /// `BANK_PAYOUT` of the bank with this 6-digit BIN.
    BankPayout { bin: &'a str },
    /// `CHANNEL_CLEARING` of the payer channel with this id (as in its principal
    /// `channel:{id}`: 1-64 characters of `[A-Za-z0-9._-]`).
    ChannelClearing { channel: &'a str },
    /// `FEE_REVENUE`.
    FeeRevenue,
    /// `SUSPENSE`.
    Suspense,
    /// `REFUNDS_PAYABLE`.
    RefundsPayable,
}

/// A key a system account cannot be derived from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error("a bank's BIN must be 6 digits, got {0:?}")]
    Bin(String),
    #[error("a channel id must be 1-64 characters of [A-Za-z0-9._-], got {0:?}")]
    Channel(String),
}

/// Longest channel id (as in a principal).
const CHANNEL_ID_CHARS_MAX: usize = 64;

impl SystemAccount<'_> {
    pub fn code(&self) -> AccountCode {
        match self {
            SystemAccount::BankClearing { .. } => AccountCode::BankClearing,
            SystemAccount::BankPayout { .. } => AccountCode::BankPayout,
            SystemAccount::ChannelClearing { .. } => AccountCode::ChannelClearing,
            SystemAccount::FeeRevenue => AccountCode::FeeRevenue,
            SystemAccount::Suspense => AccountCode::Suspense,
            SystemAccount::RefundsPayable => AccountCode::RefundsPayable,
        }
    }

    /// The name in the id derivation and the reference.
    pub fn name(&self) -> &'static str {
        match self {
            SystemAccount::BankClearing { .. } => "bank-clearing",
            SystemAccount::BankPayout { .. } => "bank-payout",
            SystemAccount::ChannelClearing { .. } => "channel-clearing",
            SystemAccount::FeeRevenue => "fee-revenue",
            SystemAccount::Suspense => "suspense",
            SystemAccount::RefundsPayable => "refunds-payable",
        }
    }

    /// The owner's key, checked: the BIN, the channel id, or `None` for a single account.
    pub fn key(&self) -> Result<Option<&str>, ChartError> {
        match *self {
            SystemAccount::BankClearing { bin } | SystemAccount::BankPayout { bin } => {
                if bin.len() == 6 && bin.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Some(bin))
                } else {
                    Err(ChartError::Bin(bin.chars().take(16).collect()))
                }
            }
            SystemAccount::ChannelClearing { channel } => {
                if !channel.is_empty()
                    && channel.chars().count() <= CHANNEL_ID_CHARS_MAX
                    && channel
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    Ok(Some(channel))
                } else {
                    Err(ChartError::Channel(
                        channel.chars().take(CHANNEL_ID_CHARS_MAX).collect(),
                    ))
                }
            }
            SystemAccount::FeeRevenue | SystemAccount::Suspense | SystemAccount::RefundsPayable => {
                Ok(None)
            }
        }
    }

    /// The account's id: SHA-256 over `paymesh.ledger.v1/system-account/{name}[/{key}]`,
    /// first 16 bytes.
    pub fn id(&self) -> Result<Id128, ChartError> {
        Ok(match self.key()? {
            Some(key) => derive(&format!(
                "paymesh.ledger.v1/system-account/{}/{key}",
                self.name()
            )),
            None => derive(&format!("paymesh.ledger.v1/system-account/{}", self.name())),
        })
    }

    /// The account's reference in the ledger, e.g. `bank 970436 clearing`, `fee revenue`
    /// (cut to 64 characters).
    pub fn reference(&self) -> Result<String, ChartError> {
        let text = match (self.key()?, self) {
            (Some(bin), SystemAccount::BankClearing { .. }) => format!("bank {bin} clearing"),
            (Some(bin), SystemAccount::BankPayout { .. }) => format!("bank {bin} payout"),
            (Some(channel), _) => format!("channel clearing {channel}"),
            (None, _) => self.name().replace('-', " "),
        };
        Ok(text.chars().take(REFERENCE_CHARS_MAX).collect())
    }

    pub fn new_account(&self) -> Result<NewAccount, ChartError> {
        Ok(NewAccount::of_chart(
            self.id()?,
            self.code(),
            self.reference()?,
        ))
    }
}

/// The id of the clearing account of the bank with this BIN.
pub fn bank_clearing(bin: &str) -> Result<Id128, ChartError> {
    SystemAccount::BankClearing { bin }.id()
}

/// The id of the payout account of the bank with this BIN.
pub fn bank_payout(bin: &str) -> Result<Id128, ChartError> {
    SystemAccount::BankPayout { bin }.id()
}

/// The id of the clearing account of the payer channel with this id.
pub fn channel_clearing(channel: &str) -> Result<Id128, ChartError> {
    SystemAccount::ChannelClearing { channel }.id()
}

/// The id of paymesh's fee revenue account.
pub fn fee_revenue() -> Id128 {
    derive("paymesh.ledger.v1/system-account/fee-revenue")
}

/// The id of the suspense account.
pub fn suspense() -> Id128 {
    derive("paymesh.ledger.v1/system-account/suspense")
}

/// The id of the refunds payable account.
pub fn refunds_payable() -> Id128 {
    derive("paymesh.ledger.v1/system-account/refunds-payable")
}

/// The first 16 bytes of SHA-256 over `label`, as an id. Zero is not an id: were those bytes
/// ever all zero (odds 2⁻¹²⁸), the label is extended until they are not, so the derivation
/// stays a total, deterministic function.
fn derive(label: &str) -> Id128 {
    let mut input = label.as_bytes().to_vec();
    loop {
        let digest = Sha256::digest(&input);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        if let Ok(id) = Id128::new(u128::from_be_bytes(first)) {
            return id;
        }
        input.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_meaning_and_codes_are_the_whole_enum() {
        assert_eq!(meaning(AccountCode::Unspecified), None);
        for (i, code) in CODES.iter().enumerate() {
            // In number order, with no gaps: a new value of the enum must join CODES.
            assert_eq!(*code as usize, i + 1);
            assert_eq!(meaning(*code).unwrap().code, *code);
        }
        assert!(AccountCode::try_from(CODES.len() as i32 + 1).is_err());
        // The numbers stored data relies on.
        assert_eq!(AccountCode::BankClearing as i32, 1);
        assert_eq!(AccountCode::MerchantPayable as i32, 2);
        assert_eq!(AccountCode::FeeRevenue as i32, 3);
        assert_eq!(AccountCode::MerchantReceivable as i32, 4);
    }

    #[test]
    fn merchant_account_ids_are_the_ones_the_merchant_service_derived() {
        // SHA-256("paymesh.merchant.v1/ledger-account/payable/3f2c9a7e-0b1d-4c55-9a0e-5d7b8c6f1a23"),
        // first 16 bytes, computed outside this code (Python's hashlib).
        let m = Uuid::parse_str("3f2c9a7e-0b1d-4c55-9a0e-5d7b8c6f1a23").unwrap();
        assert_eq!(
            MerchantAccount::Payable.id(m).to_string(),
            PAYABLE_VECTOR,
            "the payable id of an existing merchant changed"
        );
        assert_eq!(
            MerchantAccount::Receivable.id(m).to_string(),
            RECEIVABLE_VECTOR,
            "the receivable id of an existing merchant changed"
        );
        assert_eq!(
            merchant_account(MerchantAccount::Payable, m),
            MerchantAccount::Payable.id(m)
        );
        assert_eq!(
            MerchantAccount::Payable.reference(m),
            "merchant 3f2c9a7e-0b1d-4c55-9a0e-5d7b8c6f1a23 payable"
        );
    }

    const PAYABLE_VECTOR: &str = "01cfd6b3e60ad5a4d8fc3d782bdfd5a9";
    const RECEIVABLE_VECTOR: &str = "c9f3818edecb54b26d96f1ec1548eb9d";

    #[test]
    fn merchant_accounts_carry_their_code_limit_and_reference() {
        let m = Uuid::new_v4();
        let ids: Vec<Id128> = MerchantAccount::ALL.iter().map(|k| k.id(m)).collect();
        for (i, kind) in MerchantAccount::ALL.iter().enumerate() {
            let a = kind.new_account(m);
            assert_eq!(a.id, ids[i]);
            assert_eq!(a.code, kind.code());
            assert_eq!(a.currency_code, "VND");
            assert!(a.reference.chars().count() <= REFERENCE_CHARS_MAX);
            assert!(a.reference.contains(&m.to_string()));
            assert!(!ids[..i].contains(&ids[i]), "ids must be distinct");
            assert_ne!(kind.id(Uuid::new_v4()), ids[i]);
        }
        let payable = MerchantAccount::Payable.new_account(m).to_wire();
        assert_eq!(payable.code, AccountCode::MerchantPayable as i32);
        assert_eq!(
            payable.flags,
            Some(pb::AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            })
        );
        let receivable = MerchantAccount::Receivable.new_account(m).to_wire();
        assert_eq!(receivable.code, 4);
        assert!(receivable.flags.unwrap().credits_must_not_exceed_debits);
        assert_eq!(
            MerchantAccount::BillerPayable.limit(),
            BalanceLimit::DebitsMustNotExceedCredits
        );
    }

    #[test]
    fn system_accounts_have_fixed_ids_and_checked_keys() {
        let clearing = bank_clearing("970436").unwrap();
        assert_eq!(clearing, bank_clearing("970436").unwrap());
        assert_ne!(clearing, bank_clearing("970403").unwrap());
        assert_ne!(clearing, bank_payout("970436").unwrap());
        assert_eq!(fee_revenue(), SystemAccount::FeeRevenue.id().unwrap());
        assert_eq!(suspense(), SystemAccount::Suspense.id().unwrap());
        assert_eq!(
            refunds_payable(),
            SystemAccount::RefundsPayable.id().unwrap()
        );
        assert_ne!(fee_revenue(), suspense());
        assert_eq!(
            channel_clearing("momo").unwrap(),
            channel_clearing("momo").unwrap()
        );
        for bad in ["", "97043", "9704366", "97043a", "٩٧٠٤٣٦"] {
            assert!(bank_clearing(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a b", "x/y", &"c".repeat(65)] {
            assert!(channel_clearing(bad).is_err(), "{bad:?}");
        }
        let a = SystemAccount::BankClearing { bin: "970436" }
            .new_account()
            .unwrap();
        assert_eq!(a.code, AccountCode::BankClearing);
        assert_eq!(a.limit, BalanceLimit::None);
        assert_eq!(a.reference, "bank 970436 clearing");
        let long = "c".repeat(64);
        let r = SystemAccount::ChannelClearing { channel: &long }
            .reference()
            .unwrap();
        assert_eq!(r.chars().count(), REFERENCE_CHARS_MAX);
        assert_eq!(
            SystemAccount::RefundsPayable.new_account().unwrap().limit,
            BalanceLimit::DebitsMustNotExceedCredits
        );
        assert_eq!(
            SystemAccount::FeeRevenue.reference().unwrap(),
            "fee revenue"
        );
    }
}
