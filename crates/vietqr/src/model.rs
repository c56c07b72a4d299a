//! The VietQR model, its validation rules, the strict decoder and the encoder.
//!
//! Each rule lives in one `check_*` function that both [`decode`] and
//! [`VietQr::encode`] call, so the encoder cannot build what the decoder
//! rejects.

use std::fmt;

use crate::crc::{crc16_ccitt_false, format_crc, parse_crc};
use crate::error::{Error, ErrorKind};
use crate::tlv::{self, Tlv, path};

/// GUID of NAPAS VietQR (merchant account information 38).
pub const VIETQR_GUID: &str = "A000000727";
/// GUID of VNPAY-QR (merchant account information 26).
pub const VNPAYQR_GUID: &str = "A000000775";
/// ISO 4217 numeric code of the Vietnamese dong, which has no minor units.
pub const VND: &str = "704";

const ID_PAYLOAD_FORMAT: u8 = 0;
const ID_POINT_OF_INITIATION: u8 = 1;
const ID_MCC: u8 = 52;
const ID_CURRENCY: u8 = 53;
const ID_AMOUNT: u8 = 54;
const ID_COUNTRY: u8 = 58;
const ID_MERCHANT_NAME: u8 = 59;
const ID_MERCHANT_CITY: u8 = 60;
const ID_ADDITIONAL: u8 = 62;
const ID_CRC: u8 = 63;

/// Ids 02..=25: primitive merchant identifiers reserved for card networks.
const NETWORK_IDS: std::ops::RangeInclusive<u8> = 2..=25;
/// Ids 26..=51: merchant account information templates, told apart by GUID.
const TEMPLATE_IDS: std::ops::RangeInclusive<u8> = 26..=51;

const MAX_GUID_LEN: usize = 32;
const MAX_ACCOUNT_LEN: usize = 19;
const MAX_AMOUNT_LEN: usize = 13;

/// Field 01: whether the code is reusable or for one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointOfInitiation {
    /// `11`: the same code for many payments.
    Static,
    /// `12`: a code for one payment, usually with an amount.
    Dynamic,
}

impl PointOfInitiation {
    /// The two-digit code written in field 01.
    pub fn code(self) -> &'static str {
        match self {
            Self::Static => "11",
            Self::Dynamic => "12",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "11" => Some(Self::Static),
            "12" => Some(Self::Dynamic),
            _ => None,
        }
    }
}

/// VietQR sub 02: where the money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceCode {
    /// `QRIBFTTA`: fast transfer to a bank account.
    ToAccount,
    /// `QRIBFTTC`: fast transfer to a card number.
    ToCard,
}

impl ServiceCode {
    /// The code written in the template.
    pub fn code(self) -> &'static str {
        match self {
            Self::ToAccount => "QRIBFTTA",
            Self::ToCard => "QRIBFTTC",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "QRIBFTTA" => Some(Self::ToAccount),
            "QRIBFTTC" => Some(Self::ToCard),
            _ => None,
        }
    }
}

/// The payment scheme a merchant account belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// NAPAS VietQR, GUID `A000000727`.
    VietQr,
    /// VNPAY-QR, GUID `A000000775`.
    VnPayQr,
    /// Another template scheme, named by its GUID.
    Other(String),
    /// A card network's primitive merchant identifier (ids 02..=25).
    Network(u8),
}

impl Scheme {
    /// The scheme a template GUID names (compared ignoring ASCII case).
    pub fn from_guid(guid: &str) -> Self {
        if guid.eq_ignore_ascii_case(VIETQR_GUID) {
            Self::VietQr
        } else if guid.eq_ignore_ascii_case(VNPAYQR_GUID) {
            Self::VnPayQr
        } else {
            Self::Other(guid.to_owned())
        }
    }

    /// A short name: `VIETQR`, `VNPAYQR`, the GUID, or `NETWORK-nn`.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VietQr => f.write_str("VIETQR"),
            Self::VnPayQr => f.write_str("VNPAYQR"),
            Self::Other(guid) => f.write_str(guid),
            Self::Network(id) => write!(f, "NETWORK-{id:02}"),
        }
    }
}

/// A NAPAS VietQR merchant account template (normally id 38).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQrAccount {
    /// The template id, normally 38.
    pub id: u8,
    /// Sub 01/00: the acquirer (bank) BIN, six digits.
    pub bank_bin: String,
    /// Sub 01/01: the account or card number, 1..=19 ASCII letters or digits.
    pub account: String,
    /// Sub 02: transfer to an account or to a card.
    pub service_code: ServiceCode,
    /// Other subs of the beneficiary organisation (01/02 onwards), in order.
    pub beneficiary_others: Vec<(u8, String)>,
    /// Other subs of the template (03 onwards), in order.
    pub others: Vec<(u8, String)>,
}

/// Any merchant account information template that is not VietQR, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateAccount {
    /// The template id, 26..=51.
    pub id: u8,
    /// Every sub, including the GUID (sub 00), in the order written.
    pub fields: Vec<(u8, String)>,
}

impl TemplateAccount {
    /// The value of sub `id`, if present.
    pub fn field(&self, id: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_str())
    }

    /// The GUID (sub 00).
    pub fn guid(&self) -> Option<&str> {
        self.field(0)
    }

    /// The scheme named by the GUID.
    pub fn scheme(&self) -> Scheme {
        Scheme::from_guid(self.guid().unwrap_or_default())
    }

    /// The template value exactly as written (the subs re-joined in order).
    pub fn raw(&self) -> Result<String, Error> {
        let container = path("", self.id);
        let mut out = String::new();
        for (id, value) in &self.fields {
            tlv::push(&mut out, &container, *id, value)?;
        }
        Ok(out)
    }
}

/// One merchant account information field (ids 02..=51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAccount {
    /// NAPAS VietQR, decoded into its parts.
    VietQr(VietQrAccount),
    /// Another scheme's template (VNPAY-QR and others), kept whole.
    Template(TemplateAccount),
    /// A card network's primitive merchant identifier (ids 02..=25).
    Network {
        /// The id, 02..=25.
        id: u8,
        /// The value as written.
        value: String,
    },
}

impl MerchantAccount {
    /// The field id.
    pub fn id(&self) -> u8 {
        match self {
            Self::VietQr(a) => a.id,
            Self::Template(t) => t.id,
            Self::Network { id, .. } => *id,
        }
    }

    /// The scheme this account belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::VietQr(_) => Scheme::VietQr,
            Self::Template(t) => t.scheme(),
            Self::Network { id, .. } => Scheme::Network(*id),
        }
    }
}

/// Field 62, additional data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdditionalData {
    /// Sub 01.
    pub bill_number: Option<String>,
    /// Sub 03.
    pub store_label: Option<String>,
    /// Sub 05.
    pub reference_label: Option<String>,
    /// Sub 06.
    pub customer_label: Option<String>,
    /// Sub 07.
    pub terminal_label: Option<String>,
    /// Sub 08, the transfer message shown to the payer.
    pub purpose: Option<String>,
    /// Every other sub (02 mobile number, 04 loyalty number, 09, ...), in order.
    pub others: Vec<(u8, String)>,
}

impl AdditionalData {
    /// True when no sub is set (field 62 is then left out).
    pub fn is_empty(&self) -> bool {
        self.named().iter().all(|(_, v)| v.is_none()) && self.others.is_empty()
    }

    fn named(&self) -> [(u8, &Option<String>); 6] {
        [
            (1, &self.bill_number),
            (3, &self.store_label),
            (5, &self.reference_label),
            (6, &self.customer_label),
            (7, &self.terminal_label),
            (8, &self.purpose),
        ]
    }

    fn named_slot(&mut self, id: u8) -> Option<&mut Option<String>> {
        match id {
            1 => Some(&mut self.bill_number),
            3 => Some(&mut self.store_label),
            5 => Some(&mut self.reference_label),
            6 => Some(&mut self.customer_label),
            7 => Some(&mut self.terminal_label),
            8 => Some(&mut self.purpose),
            _ => None,
        }
    }
}

/// A decoded VietQR / EMVCo merchant-presented QR payload.
///
/// [`decode`] only returns values that [`VietQr::encode`] accepts; the fields
/// are public, and `encode` re-checks every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQr {
    /// Field 01.
    pub point_of_initiation: PointOfInitiation,
    /// Fields 02..=51, in order. At least one.
    pub merchant_accounts: Vec<MerchantAccount>,
    /// Field 52, merchant category code (four digits).
    pub mcc: Option<String>,
    /// Field 53, ISO 4217 numeric currency (`704` for VND).
    pub currency: String,
    /// Field 54, the amount as written (no decimals for VND).
    pub amount: Option<String>,
    /// Field 58, ISO 3166 alpha-2 country (`VN`).
    pub country: String,
    /// Field 59.
    pub merchant_name: Option<String>,
    /// Field 60.
    pub merchant_city: Option<String>,
    /// Field 62.
    pub additional: AdditionalData,
    /// Every other top-level field (55, 56, 57, 61, 64..=99), in order.
    pub unknown: Vec<(u8, String)>,
}

impl VietQr {
    /// The VietQR template, if there is one.
    pub fn vietqr_account(&self) -> Option<&VietQrAccount> {
        self.merchant_accounts.iter().find_map(|a| match a {
            MerchantAccount::VietQr(v) => Some(v),
            _ => None,
        })
    }

    /// The account payers' apps use: the VietQR template if present, else the first one.
    pub fn primary_account(&self) -> Option<&MerchantAccount> {
        self.merchant_accounts
            .iter()
            .find(|a| matches!(a, MerchantAccount::VietQr(_)))
            .or_else(|| self.merchant_accounts.first())
    }

    /// The scheme of [`Self::primary_account`].
    pub fn scheme(&self) -> Option<Scheme> {
        self.primary_account().map(MerchantAccount::scheme)
    }

    /// VietQR acquirer BIN.
    pub fn bank_bin(&self) -> Option<&str> {
        self.vietqr_account().map(|a| a.bank_bin.as_str())
    }

    /// VietQR account or card number.
    pub fn account(&self) -> Option<&str> {
        self.vietqr_account().map(|a| a.account.as_str())
    }

    /// VietQR service code.
    pub fn service_code(&self) -> Option<ServiceCode> {
        self.vietqr_account().map(|a| a.service_code)
    }

    /// Writes the payload: 00, 01, the merchant accounts in order, 52, 53, 54,
    /// 58, 59, 60, 62, the unknown fields in order, then 63 with the CRC.
    ///
    /// Refuses (with the error the decoder would give) anything [`decode`]
    /// would reject.
    pub fn encode(&self) -> Result<String, Error> {
        let mut out = String::new();
        let mut seen = [false; 100];
        tlv::push(&mut out, "", ID_PAYLOAD_FORMAT, "01")?;
        tlv::push(
            &mut out,
            "",
            ID_POINT_OF_INITIATION,
            self.point_of_initiation.code(),
        )?;

        if self.merchant_accounts.is_empty() {
            return Err(Error::new("payload", ErrorKind::NoMerchantAccount));
        }
        for account in &self.merchant_accounts {
            let id = account.id();
            claim(&mut seen, "", id)?;
            let value = encode_account(account)?;
            tlv::push(&mut out, "", id, &value)?;
        }

        if let Some(mcc) = &self.mcc {
            check_mcc(mcc)?;
            tlv::push(&mut out, "", ID_MCC, mcc)?;
        }
        check_currency(&self.currency)?;
        tlv::push(&mut out, "", ID_CURRENCY, &self.currency)?;
        if let Some(amount) = &self.amount {
            check_amount(amount, &self.currency)?;
            tlv::push(&mut out, "", ID_AMOUNT, amount)?;
        }
        check_country(&self.country)?;
        tlv::push(&mut out, "", ID_COUNTRY, &self.country)?;
        if let Some(name) = &self.merchant_name {
            tlv::push(&mut out, "", ID_MERCHANT_NAME, name)?;
        }
        if let Some(city) = &self.merchant_city {
            tlv::push(&mut out, "", ID_MERCHANT_CITY, city)?;
        }
        if !self.additional.is_empty() {
            let value = encode_additional(&self.additional)?;
            tlv::push(&mut out, "", ID_ADDITIONAL, &value)?;
        }
        for (id, value) in &self.unknown {
            if !is_unknown_top_level(*id) {
                return Err(Error::new(path("", *id), ErrorKind::ReservedId));
            }
            claim(&mut seen, "", *id)?;
            tlv::push(&mut out, "", *id, value)?;
        }

        out.push_str("6304");
        let crc = crc16_ccitt_false(out.as_bytes());
        out.push_str(&format_crc(crc));

        // Belt and braces: never hand out a string the decoder rejects.
        decode(&out)?;
        Ok(out)
    }
}

/// Decodes a VietQR / EMVCo merchant-presented payload, strictly.
///
/// Checks, in this order: the TLV layout of the whole string; 00 = `01` first;
/// 63 last with four hex digits; the CRC (case-insensitive); then each field
/// in the order written (recursing into templates); then the mandatory fields
/// (01, a merchant account, 53, 58); then no decimals for VND.
///
/// Never panics.
pub fn decode(payload: &str) -> Result<VietQr, Error> {
    let items = tlv::parse(payload, "")?;

    match items.first() {
        Some(Tlv {
            id: ID_PAYLOAD_FORMAT,
            value,
        }) => {
            if *value != "01" {
                return Err(Error::new(
                    "00",
                    ErrorKind::BadPayloadFormat((*value).to_owned()),
                ));
            }
        }
        _ => return Err(Error::new("00", ErrorKind::PayloadFormatNotFirst)),
    }

    let Some(crc_index) = items.iter().position(|t| t.id == ID_CRC) else {
        return Err(Error::new("63", ErrorKind::CrcMissing));
    };
    if crc_index + 1 != items.len() {
        return Err(Error::new("63", ErrorKind::CrcNotLast));
    }
    let crc_text = items.get(crc_index).map(|t| t.value).unwrap_or_default();
    let Some(found) = parse_crc(crc_text) else {
        return Err(Error::new(
            "63",
            ErrorKind::BadCrcFormat(crc_text.to_owned()),
        ));
    };
    // 63 is last and its value is four ASCII characters: the CRC covers
    // everything before them, "6304" included.
    let covered = payload
        .as_bytes()
        .get(..payload.len().saturating_sub(4))
        .unwrap_or_default();
    let computed = crc16_ccitt_false(covered);
    if computed != found {
        return Err(Error::new(
            "63",
            ErrorKind::CrcMismatch {
                computed,
                found: crc_text.to_owned(),
            },
        ));
    }

    let mut point_of_initiation = None;
    let mut merchant_accounts = Vec::new();
    let mut mcc = None;
    let mut currency = None;
    let mut amount = None;
    let mut country = None;
    let mut merchant_name = None;
    let mut merchant_city = None;
    let mut additional = AdditionalData::default();
    let mut unknown = Vec::new();

    for &Tlv { id, value } in items.iter().skip(1).take(crc_index.saturating_sub(1)) {
        let owned = value.to_owned();
        match id {
            ID_POINT_OF_INITIATION => {
                point_of_initiation = Some(
                    PointOfInitiation::from_code(value)
                        .ok_or_else(|| Error::new("01", ErrorKind::BadPointOfInitiation(owned)))?,
                );
            }
            id if NETWORK_IDS.contains(&id) => {
                merchant_accounts.push(MerchantAccount::Network { id, value: owned });
            }
            id if TEMPLATE_IDS.contains(&id) => {
                merchant_accounts.push(decode_template(id, value)?);
            }
            ID_MCC => {
                check_mcc(value)?;
                mcc = Some(owned);
            }
            ID_CURRENCY => {
                check_currency(value)?;
                currency = Some(owned);
            }
            ID_AMOUNT => {
                check_amount_format(value)?;
                amount = Some(owned);
            }
            ID_COUNTRY => {
                check_country(value)?;
                country = Some(owned);
            }
            ID_MERCHANT_NAME => merchant_name = Some(owned),
            ID_MERCHANT_CITY => merchant_city = Some(owned),
            ID_ADDITIONAL => additional = decode_additional(value)?,
            _ => unknown.push((id, owned)),
        }
    }

    let point_of_initiation = point_of_initiation
        .ok_or_else(|| Error::new("01", ErrorKind::Missing("point of initiation")))?;
    if merchant_accounts.is_empty() {
        return Err(Error::new("payload", ErrorKind::NoMerchantAccount));
    }
    let currency = currency.ok_or_else(|| Error::new("53", ErrorKind::Missing("currency")))?;
    let country = country.ok_or_else(|| Error::new("58", ErrorKind::Missing("country")))?;
    if let Some(amount) = &amount {
        check_amount(amount, &currency)?;
    }

    Ok(VietQr {
        point_of_initiation,
        merchant_accounts,
        mcc,
        currency,
        amount,
        country,
        merchant_name,
        merchant_city,
        additional,
        unknown,
    })
}

// --- templates -------------------------------------------------------------

fn decode_template(id: u8, value: &str) -> Result<MerchantAccount, Error> {
    let container = path("", id);
    let subs = tlv::parse(value, &container)?;
    let guid = subs
        .iter()
        .find(|s| s.id == 0)
        .ok_or_else(|| Error::new(path(&container, 0), ErrorKind::Missing("GUID")))?;
    check_guid(&container, guid.value)?;
    if Scheme::from_guid(guid.value) == Scheme::VietQr {
        return decode_vietqr(id, &container, &subs).map(MerchantAccount::VietQr);
    }
    Ok(MerchantAccount::Template(TemplateAccount {
        id,
        fields: owned_pairs(&subs),
    }))
}

fn decode_vietqr(id: u8, container: &str, subs: &[Tlv<'_>]) -> Result<VietQrAccount, Error> {
    let mut beneficiary = None;
    let mut service_code = None;
    let mut others = Vec::new();
    for sub in subs {
        match sub.id {
            0 => {}
            1 => beneficiary = Some(decode_beneficiary(&path(container, 1), sub.value)?),
            2 => service_code = Some(check_service_code(container, sub.value)?),
            _ => others.push((sub.id, sub.value.to_owned())),
        }
    }
    let (bank_bin, account, beneficiary_others) = beneficiary.ok_or_else(|| {
        Error::new(
            path(container, 1),
            ErrorKind::Missing("beneficiary organisation"),
        )
    })?;
    let service_code = service_code
        .ok_or_else(|| Error::new(path(container, 2), ErrorKind::Missing("service code")))?;
    Ok(VietQrAccount {
        id,
        bank_bin,
        account,
        service_code,
        beneficiary_others,
        others,
    })
}

type Beneficiary = (String, String, Vec<(u8, String)>);

fn decode_beneficiary(container: &str, value: &str) -> Result<Beneficiary, Error> {
    let subs = tlv::parse(value, container)?;
    let mut bin = None;
    let mut account = None;
    let mut others = Vec::new();
    for sub in &subs {
        match sub.id {
            0 => {
                check_bin(container, sub.value)?;
                bin = Some(sub.value.to_owned());
            }
            1 => {
                check_account(container, sub.value)?;
                account = Some(sub.value.to_owned());
            }
            _ => others.push((sub.id, sub.value.to_owned())),
        }
    }
    let bin =
        bin.ok_or_else(|| Error::new(path(container, 0), ErrorKind::Missing("acquirer BIN")))?;
    let account = account.ok_or_else(|| {
        Error::new(
            path(container, 1),
            ErrorKind::Missing("account or card number"),
        )
    })?;
    Ok((bin, account, others))
}

fn encode_account(account: &MerchantAccount) -> Result<String, Error> {
    let container = path("", account.id());
    let mut out = String::new();
    match account {
        MerchantAccount::VietQr(a) => {
            if !TEMPLATE_IDS.contains(&a.id) {
                return Err(Error::new(container, ErrorKind::ReservedId));
            }
            let beneficiary_path = path(&container, 1);
            check_bin(&beneficiary_path, &a.bank_bin)?;
            check_account(&beneficiary_path, &a.account)?;
            let mut beneficiary = String::new();
            let mut seen = [false; 100];
            tlv::push(&mut beneficiary, &beneficiary_path, 0, &a.bank_bin)?;
            tlv::push(&mut beneficiary, &beneficiary_path, 1, &a.account)?;
            push_others(
                &mut beneficiary,
                &beneficiary_path,
                &mut seen,
                &[0, 1],
                &a.beneficiary_others,
            )?;

            let mut seen = [false; 100];
            tlv::push(&mut out, &container, 0, VIETQR_GUID)?;
            tlv::push(&mut out, &container, 1, &beneficiary)?;
            tlv::push(&mut out, &container, 2, a.service_code.code())?;
            push_others(&mut out, &container, &mut seen, &[0, 1, 2], &a.others)?;
        }
        MerchantAccount::Template(t) => {
            if !TEMPLATE_IDS.contains(&t.id) {
                return Err(Error::new(container, ErrorKind::ReservedId));
            }
            let guid = t
                .guid()
                .ok_or_else(|| Error::new(path(&container, 0), ErrorKind::Missing("GUID")))?;
            check_guid(&container, guid)?;
            let mut seen = [false; 100];
            push_others(&mut out, &container, &mut seen, &[], &t.fields)?;
        }
        MerchantAccount::Network { id, value } => {
            if !NETWORK_IDS.contains(id) {
                return Err(Error::new(container, ErrorKind::ReservedId));
            }
            out.push_str(value);
        }
    }
    Ok(out)
}

// --- additional data (62) -----------------------------------------------------

fn decode_additional(value: &str) -> Result<AdditionalData, Error> {
    let mut data = AdditionalData::default();
    for sub in tlv::parse(value, "62")? {
        match data.named_slot(sub.id) {
            Some(slot) => *slot = Some(sub.value.to_owned()),
            None => data.others.push((sub.id, sub.value.to_owned())),
        }
    }
    Ok(data)
}

fn encode_additional(data: &AdditionalData) -> Result<String, Error> {
    let mut out = String::new();
    let mut seen = [false; 100];
    let mut named_ids = Vec::new();
    for (id, value) in data.named() {
        named_ids.push(id);
        if let Some(value) = value {
            claim(&mut seen, "62", id)?;
            tlv::push(&mut out, "62", id, value)?;
        }
    }
    push_others(&mut out, "62", &mut seen, &named_ids, &data.others)?;
    Ok(out)
}

// --- shared helpers ------------------------------------------------------------

fn owned_pairs(subs: &[Tlv<'_>]) -> Vec<(u8, String)> {
    subs.iter().map(|s| (s.id, s.value.to_owned())).collect()
}

/// Marks `id` as used in `container`, refusing a second use.
fn claim(seen: &mut [bool; 100], container: &str, id: u8) -> Result<(), Error> {
    match seen.get_mut(usize::from(id)) {
        Some(slot) if !*slot => {
            *slot = true;
            Ok(())
        }
        Some(_) => Err(Error::new(path(container, id), ErrorKind::DuplicateId)),
        None => Err(Error::new(path(container, id), ErrorKind::ReservedId)),
    }
}

/// Pushes free-form subs, refusing ids that have a typed field (`typed`) or repeat.
fn push_others(
    out: &mut String,
    container: &str,
    seen: &mut [bool; 100],
    typed: &[u8],
    others: &[(u8, String)],
) -> Result<(), Error> {
    for (id, value) in others {
        if typed.contains(id) {
            return Err(Error::new(path(container, *id), ErrorKind::ReservedId));
        }
        claim(seen, container, *id)?;
        tlv::push(out, container, *id, value)?;
    }
    Ok(())
}

fn is_unknown_top_level(id: u8) -> bool {
    matches!(id, 55..=57 | 61 | 64..=99)
}

// --- rules -------------------------------------------------------------------

fn check_guid(container: &str, guid: &str) -> Result<(), Error> {
    if guid.chars().count() > MAX_GUID_LEN {
        return Err(Error::new(
            path(container, 0),
            ErrorKind::BadGuid(guid.to_owned()),
        ));
    }
    Ok(())
}

fn check_service_code(container: &str, code: &str) -> Result<ServiceCode, Error> {
    ServiceCode::from_code(code).ok_or_else(|| {
        Error::new(
            path(container, 2),
            ErrorKind::BadServiceCode(code.to_owned()),
        )
    })
}

fn check_bin(beneficiary: &str, bin: &str) -> Result<(), Error> {
    if is_digits(bin, 6) {
        Ok(())
    } else {
        Err(Error::new(
            path(beneficiary, 0),
            ErrorKind::BadBin(bin.to_owned()),
        ))
    }
}

fn check_account(beneficiary: &str, account: &str) -> Result<(), Error> {
    let ok = (1..=MAX_ACCOUNT_LEN).contains(&account.len())
        && account.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            path(beneficiary, 1),
            ErrorKind::BadAccount(account.to_owned()),
        ))
    }
}

fn check_mcc(mcc: &str) -> Result<(), Error> {
    if is_digits(mcc, 4) {
        Ok(())
    } else {
        Err(Error::new("52", ErrorKind::BadMcc(mcc.to_owned())))
    }
}

fn check_currency(currency: &str) -> Result<(), Error> {
    if is_digits(currency, 3) {
        Ok(())
    } else {
        Err(Error::new(
            "53",
            ErrorKind::BadCurrency(currency.to_owned()),
        ))
    }
}

/// Digits, optionally one `.` with digits on both sides, at most 13 characters.
fn check_amount_format(amount: &str) -> Result<(), Error> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = amount.len() <= MAX_AMOUNT_LEN
        && match amount.split_once('.') {
            None => all_digits(amount),
            Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
        };
    if ok {
        Ok(())
    } else {
        Err(Error::new("54", ErrorKind::BadAmount(amount.to_owned())))
    }
}

/// The amount's format plus the currency's minor units (VND has none).
fn check_amount(amount: &str, currency: &str) -> Result<(), Error> {
    check_amount_format(amount)?;
    if currency == VND && amount.contains('.') {
        return Err(Error::new(
            "54",
            ErrorKind::DecimalsForVnd(amount.to_owned()),
        ));
    }
    Ok(())
}

fn check_country(country: &str) -> Result<(), Error> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::new("58", ErrorKind::BadCountry(country.to_owned())))
    }
}

fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}
