//! Shape checks on requests: every bound, every field. Bad input becomes INVALID_ARGUMENT with a
//! violation per bad field, before anything is written. What passes is typed so the engine
//! cannot see a malformed value.

use paymesh_money::{Currency, Id128, Money};
use paymesh_platform::ApiError;
use paymesh_proto::common::v1 as common;
use paymesh_proto::ledger::v1 as pb;

use crate::engine::{
    ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, FLAG_LINKED,
    FLAG_PENDING, FLAG_POST_PENDING, FLAG_VOID_PENDING, NewTransfer,
};

/// Most items in one CreateAccounts / CreateTransfers call (TigerBeetle's batch size).
pub const BATCH_ITEMS_MAX: usize = 8190;
/// Most ids in one GetBalances call.
pub const BALANCE_IDS_MAX: usize = 1000;
/// Longest reference, in characters.
pub const REFERENCE_CHARS_MAX: usize = 64;
/// Longest pending timeout: 30 days.
pub const TIMEOUT_SECONDS_MAX: u32 = 30 * 24 * 3600;
pub use paymesh_platform::edge::Violations;

/// The ledger's field checks, on the platform's (capped) violation collector.
pub trait LedgerFields {
    fn id(&mut self, field: String, bytes: &[u8]) -> Option<Id128>;
    fn optional_id(&mut self, field: String, bytes: &[u8]) -> Option<Option<Id128>>;
    fn reference(&mut self, field: String, text: &str);
    fn money(&mut self, field: &str, m: &common::Money) -> Option<Money>;
    fn batch_len(&mut self, field: &str, len: usize, max: usize);
}

impl LedgerFields for Violations {
    fn id(&mut self, field: String, bytes: &[u8]) -> Option<Id128> {
        match Id128::from_bytes(bytes) {
            Ok(id) => Some(id),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    fn optional_id(&mut self, field: String, bytes: &[u8]) -> Option<Option<Id128>> {
        if bytes.is_empty() {
            Some(None)
        } else {
            self.id(field, bytes).map(Some)
        }
    }

    fn reference(&mut self, field: String, text: &str) {
        if text.chars().count() > REFERENCE_CHARS_MAX {
            self.add(field, format!("at most {REFERENCE_CHARS_MAX} characters"));
        } else if text.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
    }

    fn money(&mut self, field: &str, m: &common::Money) -> Option<Money> {
        match Money::parse(&m.amount, &m.currency_code) {
            Ok(money) => Some(money),
            Err(e) => {
                self.add(format!("{field}.{}", e.field()), e.to_string());
                None
            }
        }
    }

    fn batch_len(&mut self, field: &str, len: usize, max: usize) {
        if len == 0 {
            self.add(field, "must not be empty");
        } else if len > max {
            self.add(field, format!("at most {max} items per call, got {len}"));
        }
    }
}

#[derive(Debug)]
pub struct NewAccount {
    pub id: Id128,
    pub currency: Currency,
    pub code: u32,
    pub flags: i16,
    pub reference: String,
}

impl NewAccount {
    /// Whether an account with these fields is a retry of this one.
    pub fn same_fields(&self, currency: Currency, code: u32, flags: i16, reference: &str) -> bool {
        self.currency == currency
            && self.code == code
            && self.flags == flags
            && self.reference == reference
    }
}

/// What an account code must be, as the violation says it: one of the chart's codes.
fn account_code_expected() -> String {
    let names: Vec<&str> = crate::chart::CODES
        .iter()
        .map(|c| c.as_str_name().trim_start_matches("ACCOUNT_CODE_"))
        .collect();
    format!("must be one of {}", names.join(", "))
}

pub fn accounts(req: &pb::CreateAccountsRequest) -> Result<Vec<NewAccount>, ApiError> {
    let mut v = Violations::default();
    v.batch_len("accounts", req.accounts.len(), BATCH_ITEMS_MAX);
    v.into_result()?;
    let mut v = Violations::default();
    let mut out = Vec::with_capacity(req.accounts.len());
    for (i, a) in req.accounts.iter().enumerate() {
        let f = |name: &str| format!("accounts[{i}].{name}");
        let id = v.id(f("id"), &a.id);
        let currency = match Currency::parse(&a.currency_code) {
            Ok(c) => Some(c),
            Err(e) => {
                v.add(f("currency_code"), e.to_string());
                None
            }
        };
        v.reference(f("reference"), &a.reference);
        let code = match pb::AccountCode::try_from(a.code) {
            Ok(pb::AccountCode::Unspecified) | Err(_) => {
                v.add(f("code"), account_code_expected());
                None
            }
            // The store keeps the code as a plain integer (the column predates the enum); the
            // chart's codes are all positive.
            Ok(c) => Some((c as i32).unsigned_abs()),
        };
        let flags = a.flags.unwrap_or_default();
        let mut bits = 0;
        if flags.debits_must_not_exceed_credits {
            bits |= ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS;
        }
        if flags.credits_must_not_exceed_debits {
            bits |= ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS;
        }
        if bits == ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS | ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS {
            v.add(f("flags"), "debits_must_not_exceed_credits and credits_must_not_exceed_debits exclude each other");
        }
        if let (Some(id), Some(currency), Some(code)) = (id, currency, code) {
            out.push(NewAccount {
                id,
                currency,
                code,
                flags: bits,
                reference: a.reference.clone(),
            });
        }
    }
    v.into_result()?;
    Ok(out)
}

pub fn transfers(req: &pb::CreateTransfersRequest) -> Result<Vec<NewTransfer>, ApiError> {
    transfer_list(&req.transfers)
}

/// The transfers of one CreateTransfers call, checked (fields named `transfers[i].…`).
pub fn transfer_list(transfers: &[pb::Transfer]) -> Result<Vec<NewTransfer>, ApiError> {
    let mut v = Violations::default();
    v.batch_len("transfers", transfers.len(), BATCH_ITEMS_MAX);
    v.into_result()?;
    let mut v = Violations::default();
    let mut out = Vec::with_capacity(transfers.len());
    for (i, t) in transfers.iter().enumerate() {
        if let Some(nt) = transfer(&mut v, i, t) {
            out.push(nt);
        }
    }
    v.into_result()?;
    Ok(out)
}

fn transfer(v: &mut Violations, i: usize, t: &pb::Transfer) -> Option<NewTransfer> {
    let f = |name: &str| format!("transfers[{i}].{name}");
    let before = v.len();
    let id = v.id(f("id"), &t.id);
    let debit = v.optional_id(f("debit_account_id"), &t.debit_account_id);
    let credit = v.optional_id(f("credit_account_id"), &t.credit_account_id);
    let pending_id = v.optional_id(f("pending_id"), &t.pending_id);
    let amount = t.amount.as_ref().and_then(|m| v.money(&f("amount"), m));
    v.reference(f("reference"), &t.reference);
    let code = match pb::TransferCode::try_from(t.code) {
        Ok(pb::TransferCode::Unspecified) | Err(_) => {
            v.add(
                f("code"),
                "must be one of QR_PAYMENT, BILL_PAYMENT, FEE, REFUND, PAYOUT, ADJUSTMENT",
            );
            None
        }
        Ok(c) => Some(c as i16),
    };
    let fl = t.flags.unwrap_or_default();
    let mut flags = 0;
    for (set, bit) in [
        (fl.linked, FLAG_LINKED),
        (fl.pending, FLAG_PENDING),
        (fl.post_pending, FLAG_POST_PENDING),
        (fl.void_pending, FLAG_VOID_PENDING),
    ] {
        if set {
            flags |= bit;
        }
    }
    let resolving = fl.post_pending || fl.void_pending;
    if u8::from(fl.pending) + u8::from(fl.post_pending) + u8::from(fl.void_pending) > 1 {
        v.add(
            f("flags"),
            "at most one of pending, post_pending, void_pending",
        );
    }
    if t.timeout_seconds > 0 && !fl.pending {
        v.add(
            f("timeout_seconds"),
            "only a pending transfer has a timeout",
        );
    }
    if t.timeout_seconds > TIMEOUT_SECONDS_MAX {
        v.add(
            f("timeout_seconds"),
            format!("at most {TIMEOUT_SECONDS_MAX} (30 days)"),
        );
    }
    if resolving {
        if t.pending_id.is_empty() {
            v.add(
                f("pending_id"),
                "required with post_pending or void_pending",
            );
        }
        if t.debit_account_id.is_empty() != t.credit_account_id.is_empty() {
            v.add(
                f("credit_account_id"),
                "give both accounts or neither on post/void",
            );
        }
    } else {
        if !t.pending_id.is_empty() {
            v.add(
                f("pending_id"),
                "only post_pending or void_pending names a pending transfer",
            );
        }
        if t.debit_account_id.is_empty() {
            v.add(f("debit_account_id"), "required");
        }
        if t.credit_account_id.is_empty() {
            v.add(f("credit_account_id"), "required");
        }
        if t.amount.is_none() {
            v.add(f("amount"), "required");
        }
    }
    if let (Some(Some(d)), Some(Some(c))) = (debit, credit)
        && d == c
    {
        v.add(f("credit_account_id"), "must differ from debit_account_id");
    }
    if v.len() != before {
        return None;
    }
    Some(NewTransfer {
        id: id?,
        debit: debit?,
        credit: credit?,
        amount,
        code: code?,
        reference: t.reference.clone(),
        flags,
        pending_id: pending_id?,
        timeout_seconds: t.timeout_seconds,
    })
}

pub fn balance_ids(req: &pb::GetBalancesRequest) -> Result<Vec<Id128>, ApiError> {
    let mut v = Violations::default();
    v.batch_len("account_ids", req.account_ids.len(), BALANCE_IDS_MAX);
    v.into_result()?;
    let mut v = Violations::default();
    let ids: Vec<Id128> = req
        .account_ids
        .iter()
        .enumerate()
        .filter_map(|(i, b)| v.id(format!("account_ids[{i}]"), b))
        .collect();
    v.into_result()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(a: &str) -> Option<common::Money> {
        Some(common::Money {
            amount: a.into(),
            currency_code: "VND".into(),
        })
    }

    fn good() -> pb::Transfer {
        pb::Transfer {
            id: Id128::random().to_bytes().to_vec(),
            debit_account_id: Id128::random().to_bytes().to_vec(),
            credit_account_id: Id128::random().to_bytes().to_vec(),
            amount: money("50000"),
            code: pb::TransferCode::QrPayment as i32,
            reference: "order-1".into(),
            flags: None,
            pending_id: vec![],
            timeout_seconds: 0,
        }
    }

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::InvalidArgument(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn check(t: pb::Transfer) -> Result<Vec<NewTransfer>, ApiError> {
        transfers(&pb::CreateTransfersRequest {
            transfers: vec![good(), t],
        })
    }

    #[test]
    fn good_transfer_passes() {
        let t = check(good()).unwrap();
        assert_eq!(t[1].amount.map(|m| m.minor_units()), Some(50_000));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(pb::Transfer, &str)> = vec![
            (
                pb::Transfer {
                    id: vec![1; 15],
                    ..good()
                },
                "transfers[1].id",
            ),
            (
                pb::Transfer {
                    id: vec![0; 16],
                    ..good()
                },
                "transfers[1].id",
            ),
            (
                pb::Transfer {
                    debit_account_id: vec![],
                    ..good()
                },
                "transfers[1].debit_account_id",
            ),
            (
                pb::Transfer {
                    credit_account_id: vec![9; 3],
                    ..good()
                },
                "transfers[1].credit_account_id",
            ),
            (
                pb::Transfer {
                    amount: None,
                    ..good()
                },
                "transfers[1].amount",
            ),
            (
                pb::Transfer {
                    amount: money("50000.5"),
                    ..good()
                },
                "transfers[1].amount.amount",
            ),
            (
                pb::Transfer {
                    amount: money("-1"),
                    ..good()
                },
                "transfers[1].amount.amount",
            ),
            (
                pb::Transfer {
                    amount: money("0"),
                    ..good()
                },
                "transfers[1].amount.amount",
            ),
            (
                pb::Transfer {
                    amount: money("1000000000000000000"),
                    ..good()
                },
                "transfers[1].amount.amount",
            ),
            (
                pb::Transfer {
                    amount: Some(common::Money {
                        amount: "1".into(),
                        currency_code: "XXX".into(),
                    }),
                    ..good()
                },
                "transfers[1].amount.currency_code",
            ),
            (pb::Transfer { code: 0, ..good() }, "transfers[1].code"),
            (pb::Transfer { code: 99, ..good() }, "transfers[1].code"),
            (
                pb::Transfer {
                    reference: "x".repeat(65),
                    ..good()
                },
                "transfers[1].reference",
            ),
            (
                pb::Transfer {
                    reference: "a\0b".into(),
                    ..good()
                },
                "transfers[1].reference",
            ),
            (
                pb::Transfer {
                    timeout_seconds: 5,
                    ..good()
                },
                "transfers[1].timeout_seconds",
            ),
            (
                pb::Transfer {
                    pending_id: vec![1; 16],
                    ..good()
                },
                "transfers[1].pending_id",
            ),
            (
                pb::Transfer {
                    flags: Some(pb::TransferFlags {
                        pending: true,
                        void_pending: true,
                        ..Default::default()
                    }),
                    ..good()
                },
                "transfers[1].flags",
            ),
            (
                pb::Transfer {
                    flags: Some(pb::TransferFlags {
                        post_pending: true,
                        ..Default::default()
                    }),
                    ..good()
                },
                "transfers[1].pending_id",
            ),
        ];
        for (t, field) in cases {
            let got = fields(check(t).unwrap_err());
            assert!(
                got.iter().any(|f| f == field),
                "expected {field}, got {got:?}"
            );
        }
        let same = pb::Transfer {
            credit_account_id: vec![7; 16],
            debit_account_id: vec![7; 16],
            ..good()
        };
        assert_eq!(
            fields(check(same).unwrap_err()),
            vec!["transfers[1].credit_account_id"]
        );
    }

    #[test]
    fn batch_bounds() {
        assert_eq!(
            fields(transfers(&pb::CreateTransfersRequest { transfers: vec![] }).unwrap_err()),
            vec!["transfers"]
        );
        let many = vec![good(); BATCH_ITEMS_MAX + 1];
        assert_eq!(
            fields(transfers(&pb::CreateTransfersRequest { transfers: many }).unwrap_err()),
            vec!["transfers"]
        );
        let ids = vec![vec![1u8; 16]; BALANCE_IDS_MAX + 1];
        assert!(balance_ids(&pb::GetBalancesRequest { account_ids: ids }).is_err());
    }

    #[test]
    fn violations_are_capped() {
        let bad = vec![
            pb::Transfer {
                id: vec![],
                ..good()
            };
            5000
        ];
        let got = fields(transfers(&pb::CreateTransfersRequest { transfers: bad }).unwrap_err());
        assert_eq!(got.len(), paymesh_platform::edge::VIOLATIONS_MAX);
    }

    #[test]
    fn accounts_are_checked() {
        let a = pb::Account {
            id: vec![1; 16],
            currency_code: "VND".into(),
            code: pb::AccountCode::BankClearing as i32,
            flags: Some(pb::AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: true,
            }),
            reference: "r".into(),
        };
        let got = fields(
            accounts(&pb::CreateAccountsRequest {
                accounts: vec![a.clone()],
            })
            .unwrap_err(),
        );
        assert_eq!(got, vec!["accounts[0].flags"]);
        let bad_ccy = pb::Account {
            currency_code: "đồng".into(),
            flags: None,
            ..a.clone()
        };
        let got = fields(
            accounts(&pb::CreateAccountsRequest {
                accounts: vec![bad_ccy],
            })
            .unwrap_err(),
        );
        assert_eq!(got, vec!["accounts[0].currency_code"]);
        for code in [0, 10, 99, -1] {
            let bad_code = pb::Account {
                code,
                flags: None,
                ..a.clone()
            };
            let err = accounts(&pb::CreateAccountsRequest {
                accounts: vec![bad_code],
            })
            .unwrap_err();
            assert!(err.to_string().contains("BANK_CLEARING"), "{err}");
            assert_eq!(fields(err), vec!["accounts[0].code"], "code {code}");
        }
        for code in crate::chart::CODES {
            let good = pb::Account {
                code: code as i32,
                flags: None,
                ..a.clone()
            };
            let ok = accounts(&pb::CreateAccountsRequest {
                accounts: vec![good],
            })
            .unwrap();
            assert_eq!(ok[0].code, code as u32);
        }
    }
}

#[cfg(test)]
mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![]),
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(any::<u8>(), 16..=16)
        ]
    }

    fn money() -> impl Strategy<Value = Option<common::Money>> {
        prop::option::of(
            (
                ".{0,30}",
                prop_oneof![Just("VND".to_string()), Just("USD".to_string()), ".{0,5}"],
            )
                .prop_map(|(amount, currency_code)| common::Money {
                    amount,
                    currency_code,
                }),
        )
    }

    fn transfer() -> impl Strategy<Value = pb::Transfer> {
        (
            bytes(),
            bytes(),
            bytes(),
            money(),
            any::<i32>(),
            ".{0,80}",
            any::<[bool; 4]>(),
            bytes(),
            any::<u32>(),
        )
            .prop_map(
                |(id, d, c, amount, code, reference, f, pending_id, timeout_seconds)| {
                    pb::Transfer {
                        id,
                        debit_account_id: d,
                        credit_account_id: c,
                        amount,
                        code,
                        reference,
                        flags: Some(pb::TransferFlags {
                            linked: f[0],
                            pending: f[1],
                            post_pending: f[2],
                            void_pending: f[3],
                        }),
                        pending_id,
                        timeout_seconds,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever arrives, validation answers (typed transfers or field violations) and never
        /// panics; what it lets through keeps the engine's assumptions.
        #[test]
        fn validation_never_panics_and_what_passes_is_well_formed(ts in prop::collection::vec(transfer(), 0..6)) {
            match transfers(&pb::CreateTransfersRequest { transfers: ts }) {
                Ok(valid) => {
                    for t in valid {
                        prop_assert!(t.reference.chars().count() <= REFERENCE_CHARS_MAX);
                        if t.is_post_or_void() {
                            prop_assert!(t.pending_id.is_some());
                        } else {
                            prop_assert!(t.debit.is_some() && t.credit.is_some() && t.amount.is_some());
                            prop_assert!(t.debit != t.credit);
                        }
                    }
                }
                Err(ApiError::InvalidArgument(v)) => prop_assert!(!v.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
