//! A builder for the common case: one VietQR account, VND, Vietnam.

use crate::error::Error;
use crate::model::{
    AdditionalData, MerchantAccount, PointOfInitiation, ServiceCode, VND, VietQr, VietQrAccount,
};

/// Builds a VietQR payload. Nothing is checked until [`Self::build`], which
/// refuses (with the decoder's error) anything [`crate::decode`] would reject.
///
/// ```
/// let payload = vietqr::VietQrBuilder::new("970403", "0011012345678")
///     .amount_vnd(180_000)
///     .bill_number("NPS6869")
///     .purpose("thanh toan don hang")
///     .build()?;
/// assert_eq!(
///     payload,
///     "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA\
///      530370454061800005802VN62340107NPS68690819thanh toan don hang63042E2E"
/// );
/// # Ok::<(), vietqr::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct VietQrBuilder {
    qr: VietQr,
    point_of_initiation: Option<PointOfInitiation>,
}

impl VietQrBuilder {
    /// A transfer to `account` at the bank with acquirer BIN `bank_bin`,
    /// in VND, country VN, service code QRIBFTTA.
    pub fn new(bank_bin: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            qr: VietQr {
                point_of_initiation: PointOfInitiation::Static,
                merchant_accounts: vec![MerchantAccount::VietQr(VietQrAccount {
                    id: 38,
                    bank_bin: bank_bin.into(),
                    account: account.into(),
                    service_code: ServiceCode::ToAccount,
                    beneficiary_others: Vec::new(),
                    others: Vec::new(),
                })],
                mcc: None,
                currency: VND.to_owned(),
                amount: None,
                country: "VN".to_owned(),
                merchant_name: None,
                merchant_city: None,
                additional: AdditionalData::default(),
                unknown: Vec::new(),
            },
            point_of_initiation: None,
        }
    }

    /// Transfer to an account (QRIBFTTA, the default) or to a card (QRIBFTTC).
    pub fn service_code(mut self, code: ServiceCode) -> Self {
        for account in &mut self.qr.merchant_accounts {
            if let MerchantAccount::VietQr(a) = account {
                a.service_code = code;
            }
        }
        self
    }

    /// Static (11) or dynamic (12). Default: dynamic if an amount is set, else static.
    pub fn point_of_initiation(mut self, poi: PointOfInitiation) -> Self {
        self.point_of_initiation = Some(poi);
        self
    }

    /// The amount as written in field 54, e.g. `"180000"` (or `"12.50"` for a
    /// currency with minor units).
    pub fn amount(mut self, amount: impl Into<String>) -> Self {
        self.qr.amount = Some(amount.into());
        self
    }

    /// A whole-dong amount.
    pub fn amount_vnd(self, dong: u64) -> Self {
        self.amount(dong.to_string())
    }

    /// Field 53, ISO 4217 numeric (default `704`).
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.qr.currency = currency.into();
        self
    }

    /// Field 58 (default `VN`).
    pub fn country(mut self, country: impl Into<String>) -> Self {
        self.qr.country = country.into();
        self
    }

    /// Field 52, merchant category code.
    pub fn mcc(mut self, mcc: impl Into<String>) -> Self {
        self.qr.mcc = Some(mcc.into());
        self
    }

    /// Field 59.
    pub fn merchant_name(mut self, name: impl Into<String>) -> Self {
        self.qr.merchant_name = Some(name.into());
        self
    }

    /// Field 60.
    pub fn merchant_city(mut self, city: impl Into<String>) -> Self {
        self.qr.merchant_city = Some(city.into());
        self
    }

    /// Field 62/01.
    pub fn bill_number(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.bill_number = Some(value.into());
        self
    }

    /// Field 62/03.
    pub fn store_label(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.store_label = Some(value.into());
        self
    }

    /// Field 62/05.
    pub fn reference_label(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.reference_label = Some(value.into());
        self
    }

    /// Field 62/06.
    pub fn customer_label(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.customer_label = Some(value.into());
        self
    }

    /// Field 62/07.
    pub fn terminal_label(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.terminal_label = Some(value.into());
        self
    }

    /// Field 62/08, the transfer message.
    pub fn purpose(mut self, value: impl Into<String>) -> Self {
        self.qr.additional.purpose = Some(value.into());
        self
    }

    /// Another sub of field 62 (e.g. 02 mobile number), kept in call order.
    pub fn additional_field(mut self, id: u8, value: impl Into<String>) -> Self {
        self.qr.additional.others.push((id, value.into()));
        self
    }

    /// Another top-level field (55, 56, 57, 61, 64..=99), kept in call order.
    pub fn unknown_field(mut self, id: u8, value: impl Into<String>) -> Self {
        self.qr.unknown.push((id, value.into()));
        self
    }

    /// The model the payload will be written from (unchecked).
    pub fn into_vietqr(self) -> VietQr {
        let mut qr = self.qr;
        qr.point_of_initiation = self.point_of_initiation.unwrap_or(if qr.amount.is_some() {
            PointOfInitiation::Dynamic
        } else {
            PointOfInitiation::Static
        });
        qr
    }

    /// Checks every rule and writes the payload, CRC included.
    pub fn build(self) -> Result<String, Error> {
        self.into_vietqr().encode()
    }
}
