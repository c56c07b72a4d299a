//! The strict decoder and the validation rules. Each rule lives in one `check_*` function that
//! both [`decode`] and [`crate::VietQr::encode`] call, so the encoder cannot build what the
//! decoder rejects.

use crate::crc::{crc16_ccitt_false, parse_crc};
use crate::error::{Error, ErrorKind};
use crate::model::*;
use crate::tlv::{self, Tlv, path};

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

pub(crate) fn encode_account(account: &MerchantAccount) -> Result<String, Error> {
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

pub(crate) fn encode_additional(data: &AdditionalData) -> Result<String, Error> {
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

pub(crate) fn owned_pairs(subs: &[Tlv<'_>]) -> Vec<(u8, String)> {
    subs.iter().map(|s| (s.id, s.value.to_owned())).collect()
}

/// Marks `id` as used in `container`, refusing a second use.
pub(crate) fn claim(seen: &mut [bool; 100], container: &str, id: u8) -> Result<(), Error> {
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
pub(crate) fn push_others(
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

pub(crate) fn is_unknown_top_level(id: u8) -> bool {
    matches!(id, 55..=57 | 61 | 64..=99)
}

// --- rules -------------------------------------------------------------------

pub(crate) fn check_guid(container: &str, guid: &str) -> Result<(), Error> {
    if guid.chars().count() > MAX_GUID_LEN {
        return Err(Error::new(
            path(container, 0),
            ErrorKind::BadGuid(guid.to_owned()),
        ));
    }
    Ok(())
}

pub(crate) fn check_service_code(container: &str, code: &str) -> Result<ServiceCode, Error> {
    ServiceCode::from_code(code).ok_or_else(|| {
        Error::new(
            path(container, 2),
            ErrorKind::BadServiceCode(code.to_owned()),
        )
    })
}

pub(crate) fn check_bin(beneficiary: &str, bin: &str) -> Result<(), Error> {
    if is_digits(bin, 6) {
        Ok(())
    } else {
        Err(Error::new(
            path(beneficiary, 0),
            ErrorKind::BadBin(bin.to_owned()),
        ))
    }
}

pub(crate) fn check_account(beneficiary: &str, account: &str) -> Result<(), Error> {
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

pub(crate) fn check_mcc(mcc: &str) -> Result<(), Error> {
    if is_digits(mcc, 4) {
        Ok(())
    } else {
        Err(Error::new("52", ErrorKind::BadMcc(mcc.to_owned())))
    }
}

pub(crate) fn check_currency(currency: &str) -> Result<(), Error> {
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
pub(crate) fn check_amount_format(amount: &str) -> Result<(), Error> {
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
pub(crate) fn check_amount(amount: &str, currency: &str) -> Result<(), Error> {
    check_amount_format(amount)?;
    if currency == VND && amount.contains('.') {
        return Err(Error::new(
            "54",
            ErrorKind::DecimalsForVnd(amount.to_owned()),
        ));
    }
    Ok(())
}

pub(crate) fn check_country(country: &str) -> Result<(), Error> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::new("58", ErrorKind::BadCountry(country.to_owned())))
    }
}

pub(crate) fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}
