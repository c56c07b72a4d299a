//! The camt reader: one pass over quick-xml's events with a stack of element names; the values
//! it needs are recognised by their path below the statement element (see the module docs of
//! [`crate::camt`] for what is refused).

use std::io::{self, BufRead};

use quick_xml::events::{BytesStart, Event};

use super::Kind;
use crate::common::{Ccy, TEXT_BYTES_MAX, Totals, parse_amount, xml_char};
use crate::error::refuse;
use crate::{Day, Direction, FormatError, Reason, StatementInfo, StatementLine};

/// Deepest element nesting accepted (camt needs about 15).
const DEPTH_MAX: usize = 64;

/// Declares `El`, the element names the reader tells apart (each variant is the element's local
/// name; everything else is `Other`), and `name_of`, from a local name to its `El`.
macro_rules! element_names {
    ($($name:ident),* $(,)?) => {
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum El { $($name,)* Other }

        fn name_of(local: &[u8]) -> El {
            $(if local == stringify!($name).as_bytes() { return El::$name; })*
            El::Other
        }
    };
}

element_names! {
    Document, BkToCstmrStmt, BkToCstmrDbtCdtNtfctn, Stmt, Ntfctn, Acct, Id, Othr, IBAN, Ccy, Svcr,
    FinInstnId, FrToDt, FrDtTm, ToDtTm, Bal, Tp, CdOrPrtry, Cd, Amt, CdtDbtInd, Dt, DtTm,
    TxsSummry, TtlNtries, TtlCdtNtries, TtlDbtNtries, NbOfNtries, Sum, TtlNetNtry, Ntry, Sts,
    BookgDt, ValDt, AcctSvcrRef, NtryDtls, TxDtls, Refs, EndToEndId, RmtInf, Ustrd, AddtlNtryInf,
}

/// Which total of `TxsSummry`: all entries (with the net), credits, debits.
const ALL: usize = 0;
const CREDITS: usize = 1;
const DEBITS: usize = 2;

/// A value the reader keeps, by its path below the statement element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    AccountId,
    AccountCcy,
    ServicerId,
    From,
    To,
    BalanceType,
    BalanceAmount,
    BalanceSign,
    BalanceDate,
    Count(usize),
    Sum(usize),
    NetAmount,
    NetSign,
    EntryAmount,
    EntrySign,
    Status,
    BookingDate,
    ValueDate,
    EntryRef,
    EntryInfo,
    DetailRef,
    DetailE2e,
    DetailAmount,
    DetailSign,
    Remittance,
}

fn field_of(path: &[El]) -> Option<Field> {
    use El::*;
    let (head, last) = path.split_at(path.len().checked_sub(1)?);
    let last = last[0];
    let f = match (head, last) {
        ([Acct, Id, Othr], Id) | ([Acct, Id], IBAN) => Field::AccountId,
        ([Acct], Ccy) => Field::AccountCcy,
        ([Acct, Svcr, FinInstnId, Othr], Id) => Field::ServicerId,
        ([FrToDt], FrDtTm) => Field::From,
        ([FrToDt], ToDtTm) => Field::To,
        ([Bal, Tp, CdOrPrtry], Cd) => Field::BalanceType,
        ([Bal], Amt) => Field::BalanceAmount,
        ([Bal], CdtDbtInd) => Field::BalanceSign,
        ([Bal, Dt], Dt | DtTm) => Field::BalanceDate,
        ([TxsSummry, TtlNtries], NbOfNtries) => Field::Count(ALL),
        ([TxsSummry, TtlCdtNtries], NbOfNtries) => Field::Count(CREDITS),
        ([TxsSummry, TtlDbtNtries], NbOfNtries) => Field::Count(DEBITS),
        ([TxsSummry, TtlNtries], Sum) => Field::Sum(ALL),
        ([TxsSummry, TtlCdtNtries], Sum) => Field::Sum(CREDITS),
        ([TxsSummry, TtlDbtNtries], Sum) => Field::Sum(DEBITS),
        ([TxsSummry, TtlNtries, TtlNetNtry], Amt) => Field::NetAmount,
        ([TxsSummry, TtlNtries, TtlNetNtry], CdtDbtInd) => Field::NetSign,
        ([Ntry], Amt) => Field::EntryAmount,
        ([Ntry], CdtDbtInd) => Field::EntrySign,
        // camt.053.001.08 has `Sts/Cd`; earlier versions the code itself.
        ([Ntry], Sts) | ([Ntry, Sts], Cd) => Field::Status,
        ([Ntry, BookgDt], Dt | DtTm) => Field::BookingDate,
        ([Ntry, ValDt], Dt | DtTm) => Field::ValueDate,
        ([Ntry], AcctSvcrRef) => Field::EntryRef,
        ([Ntry], AddtlNtryInf) => Field::EntryInfo,
        ([Ntry, NtryDtls, TxDtls, Refs], AcctSvcrRef) => Field::DetailRef,
        ([Ntry, NtryDtls, TxDtls, Refs], EndToEndId) => Field::DetailE2e,
        ([Ntry, NtryDtls, TxDtls], Amt) => Field::DetailAmount,
        ([Ntry, NtryDtls, TxDtls], CdtDbtInd) => Field::DetailSign,
        ([Ntry, NtryDtls, TxDtls, RmtInf], Ustrd) => Field::Remittance,
        _ => return None,
    };
    Some(f)
}

/// The elements whose end completes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Statement,
    Balance,
    Entry,
    Detail,
}

fn scope_of(path: &[El]) -> Option<Scope> {
    match path {
        [] => Some(Scope::Statement),
        [El::Bal] => Some(Scope::Balance),
        [El::Ntry] => Some(Scope::Entry),
        [El::Ntry, El::NtryDtls, El::TxDtls] => Some(Scope::Detail),
        _ => None,
    }
}

#[derive(Default)]
struct Balance {
    code: Option<String>,
    amount: Option<u64>,
    sign: Option<Direction>,
}

#[derive(Default)]
struct Detail {
    bank_reference: Option<String>,
    end_to_end_id: Option<String>,
    amount: Option<u64>,
    sign: Option<Direction>,
    description: String,
}

#[derive(Default)]
struct EntryState {
    number: u64,
    amount: Option<u64>,
    sign: Option<Direction>,
    status: Option<String>,
    booking: Option<Day>,
    value: Option<Day>,
    bank_reference: Option<String>,
    info: Option<String>,
    details: u64,
    /// The first detail, held until a second shows the entry is a batch.
    held: Option<Detail>,
    detail_sum: u128,
}

/// What an entry's lines share: amount, direction, booking and value date.
type EntryHead = (u64, Direction, Day, Day);

#[derive(Default)]
struct Summary {
    counts: [Option<u64>; 3],
    sums: [Option<u64>; 3],
    net: Option<u64>,
    net_sign: Option<Direction>,
}

struct Reader<F> {
    kind: Kind,
    ccy: Ccy,
    on_line: F,
    stack: Vec<El>,
    /// The field whose text is being collected, and its depth in `stack`.
    capture: Option<(Field, usize)>,
    text: String,
    root_done: bool,
    statements: u32,
    info: StatementInfo,
    balance: Balance,
    summary: Summary,
    entry: EntryState,
    detail: Detail,
    entries: u64,
    lines: u64,
    totals: Totals,
}

pub(crate) fn read<R: BufRead, F>(
    kind: Kind,
    input: R,
    ccy: Ccy,
    on_line: F,
) -> Result<StatementInfo, FormatError>
where
    F: FnMut(StatementLine) -> Result<(), FormatError>,
{
    let mut xml = quick_xml::Reader::from_reader(input);
    xml.config_mut().check_end_names = true;
    let mut r = Reader {
        kind,
        ccy,
        on_line,
        stack: Vec::with_capacity(DEPTH_MAX),
        capture: None,
        text: String::new(),
        root_done: false,
        statements: 0,
        info: StatementInfo {
            account_number: String::new(),
            servicer_bin: None,
            currency: ccy.code.to_string(),
            from: None,
            to: None,
            opening_balance: None,
            closing_balance: None,
        },
        balance: Balance::default(),
        summary: Summary::default(),
        entry: EntryState::default(),
        detail: Detail::default(),
        entries: 0,
        lines: 0,
        totals: Totals::default(),
    };
    let mut buf = Vec::new();
    // Lines are counted in the events' bytes: a newline is never part of the markup around them.
    let mut line = 1;
    loop {
        buf.clear();
        let event = xml.read_event_into(&mut buf);
        let done = match event {
            Ok(event) => {
                line += event_newlines(&event);
                r.event(event)
            }
            Err(quick_xml::Error::Io(e)) => {
                Err(FormatError::from(io::Error::new(e.kind(), e.to_string())))
            }
            Err(e) => refuse(Reason::MalformedXml, e.to_string()),
        };
        match done {
            Ok(false) => {}
            Ok(true) => break,
            Err(e) => {
                let in_entry = r.stack.contains(&El::Ntry);
                let e = e.at_line(line);
                return Err(if in_entry { e.at_entry(r.entries) } else { e });
            }
        }
    }
    r.finish()
}

impl<F: FnMut(StatementLine) -> Result<(), FormatError>> Reader<F> {
    /// Handles one event; `Ok(true)` at the end of the input.
    fn event(&mut self, event: Event<'_>) -> Result<bool, FormatError> {
        match event {
            Event::Start(e) => self.start(&e)?,
            Event::Empty(e) => {
                self.start(&e)?;
                self.end()?;
            }
            Event::End(_) => self.end()?,
            Event::Text(t) => {
                if self.stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) {
                    return refuse(Reason::MalformedXml, "text outside the document element");
                }
                if self.capturing() {
                    let text = t.xml10_content().map_err(malformed)?;
                    self.push_text(&text)?;
                }
            }
            Event::CData(c) => {
                if self.capturing() {
                    let text = c.xml10_content().map_err(malformed)?;
                    self.push_text(&text)?;
                }
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(malformed)? {
                        Some(c) if xml_char(c) => c,
                        _ => {
                            return refuse(
                                Reason::MalformedXml,
                                "character reference to a character XML forbids",
                            );
                        }
                    }
                } else {
                    match r.as_ref() {
                        b"lt" => '<',
                        b"gt" => '>',
                        b"amp" => '&',
                        b"apos" => '\'',
                        b"quot" => '"',
                        other => {
                            let name = String::from_utf8_lossy(other);
                            return refuse(
                                Reason::MalformedXml,
                                format!("undefined entity &{};", crate::cut(&name)),
                            );
                        }
                    }
                };
                if self.capturing() {
                    self.push_text(c.encode_utf8(&mut [0; 4]))?;
                }
            }
            Event::Decl(d) => {
                if let Some(encoding) = d.encoding() {
                    let encoding = encoding.map_err(malformed)?;
                    if !encoding.eq_ignore_ascii_case(b"UTF-8") {
                        return refuse(Reason::MalformedXml, "only UTF-8 documents are read");
                    }
                }
            }
            Event::DocType(_) => {
                return refuse(
                    Reason::DoctypeForbidden,
                    "a DOCTYPE (entity declarations) is not accepted in a statement",
                );
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => return Ok(true),
        }
        Ok(false)
    }

    fn capturing(&self) -> bool {
        matches!(self.capture, Some((_, depth)) if depth == self.stack.len())
    }

    fn push_text(&mut self, text: &str) -> Result<(), FormatError> {
        if self.text.len() + text.len() > TEXT_BYTES_MAX {
            return refuse(
                Reason::FieldTooLong,
                format!("a text value is over {TEXT_BYTES_MAX} bytes"),
            );
        }
        // Controls are below 0x20; U+FFFE and U+FFFF start with 0xEF. Most text has neither.
        let plain = text.bytes().all(|b| b >= 0x20 && b != 0xEF);
        if let Some(c) = text.chars().filter(|_| !plain).find(|&c| !xml_char(c)) {
            return refuse(
                Reason::MalformedXml,
                format!("character U+{:04X} is not allowed in XML", u32::from(c)),
            );
        }
        self.text.push_str(text);
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), FormatError> {
        let name = name_of(e.local_name().as_ref());
        let (message, statement) = match self.kind {
            Kind::Statement => (El::BkToCstmrStmt, El::Stmt),
            Kind::Notification => (El::BkToCstmrDbtCdtNtfctn, El::Ntfctn),
        };
        match self.stack.len() {
            0 if self.root_done => {
                return refuse(Reason::MalformedXml, "content after the document element");
            }
            0 if name != El::Document => {
                return refuse(Reason::NotAStatement, "the root element is not Document");
            }
            1 if name != message => {
                let expected = if message == El::BkToCstmrStmt {
                    "BkToCstmrStmt (camt.053)"
                } else {
                    "BkToCstmrDbtCdtNtfctn (camt.054)"
                };
                return refuse(
                    Reason::NotAStatement,
                    format!("Document does not hold {expected}"),
                );
            }
            2 if name == statement => {
                self.statements += 1;
                if self.statements > 1 {
                    return refuse(
                        Reason::MultipleStatements,
                        "more than one statement in the file; split it first",
                    );
                }
            }
            DEPTH_MAX => {
                return refuse(
                    Reason::MalformedXml,
                    format!("elements nested deeper than {DEPTH_MAX}"),
                );
            }
            _ => {}
        }
        self.stack.push(name);
        let (scope, field) = match self.statement_path() {
            Some(path) => (scope_of(path), field_of(path)),
            None => return Ok(()),
        };
        match scope {
            Some(Scope::Balance) => self.balance = Balance::default(),
            Some(Scope::Entry) => {
                self.entries += 1;
                self.entry = EntryState {
                    number: self.entries,
                    ..EntryState::default()
                };
            }
            Some(Scope::Detail) => self.detail = Detail::default(),
            Some(Scope::Statement) | None => {}
        }
        if let Some(field) = field {
            if matches!(
                field,
                Field::BalanceAmount | Field::EntryAmount | Field::DetailAmount
            ) {
                self.check_currency_attribute(e)?;
            }
            self.capture = Some((field, self.stack.len()));
            self.text.clear();
        }
        Ok(())
    }

    /// The stack below the statement element, if inside it.
    fn statement_path(&self) -> Option<&[El]> {
        let statement = match self.kind {
            Kind::Statement => El::Stmt,
            Kind::Notification => El::Ntfctn,
        };
        (self.stack.len() > 2 && self.stack[2] == statement).then(|| &self.stack[3..])
    }

    /// The `Ccy` of an amount is the expected currency. Every attribute is read, so that a
    /// malformed or repeated one refuses the document.
    fn check_currency_attribute(&self, e: &BytesStart<'_>) -> Result<(), FormatError> {
        let mut currency = None;
        for attribute in e.attributes() {
            let attribute = attribute.map_err(malformed)?;
            if attribute.key.local_name().as_ref() == b"Ccy" {
                currency = Some(attribute.unescape_value().map_err(malformed)?);
            }
        }
        match currency {
            Some(c) if c == self.ccy.code => Ok(()),
            Some(c) => refuse(
                Reason::WrongCurrency,
                format!("amount in {:?}, expected {}", crate::cut(&c), self.ccy.code),
            ),
            None => refuse(Reason::WrongCurrency, "amount without Ccy"),
        }
    }

    fn end(&mut self) -> Result<(), FormatError> {
        if let Some((field, depth)) = self.capture {
            if depth == self.stack.len() {
                self.capture = None;
                let text = std::mem::take(&mut self.text);
                self.value(field, text.trim())?;
                self.text = text;
            }
        }
        match self.statement_path().and_then(scope_of) {
            Some(Scope::Balance) => self.end_balance()?,
            Some(Scope::Detail) => self.end_detail()?,
            Some(Scope::Entry) => self.end_entry()?,
            Some(Scope::Statement) => self.end_statement()?,
            None => {}
        }
        self.stack.pop();
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn value(&mut self, field: Field, text: &str) -> Result<(), FormatError> {
        let units = self.ccy.units;
        let amount = |text: &str| parse_amount(text, units, b'.', false);
        let movement = |text: &str| match amount(text)? {
            0 => refuse(Reason::AmountInvalid, "amount is zero"),
            a => Ok(a),
        };
        match field {
            Field::AccountId => self.info.account_number = text.to_string(),
            Field::AccountCcy if text != self.ccy.code => {
                return refuse(
                    Reason::WrongCurrency,
                    format!(
                        "account in {:?}, expected {}",
                        crate::cut(text),
                        self.ccy.code
                    ),
                );
            }
            Field::AccountCcy => {}
            Field::ServicerId => self.info.servicer_bin = Some(text.to_string()),
            Field::From => self.info.from = Some(xml_date(text)?),
            Field::To => self.info.to = Some(xml_date(text)?),
            Field::BalanceType => self.balance.code = Some(text.to_string()),
            Field::BalanceAmount => self.balance.amount = Some(amount(text)?),
            Field::BalanceSign => self.balance.sign = Some(Direction::from_code(text)?),
            Field::BalanceDate => {
                xml_date(text)?;
            }
            Field::Count(i) => self.summary.counts[i] = Some(count(text)?),
            Field::Sum(i) => self.summary.sums[i] = Some(amount(text)?),
            Field::NetAmount => self.summary.net = Some(amount(text)?),
            Field::NetSign => self.summary.net_sign = Some(Direction::from_code(text)?),
            Field::EntryAmount => once(&mut self.entry.amount, movement(text)?, "Amt")?,
            Field::EntrySign => once(
                &mut self.entry.sign,
                Direction::from_code(text)?,
                "CdtDbtInd",
            )?,
            Field::Status => once(&mut self.entry.status, text.to_string(), "Sts")?,
            Field::BookingDate => once(&mut self.entry.booking, xml_date(text)?, "BookgDt")?,
            Field::ValueDate => once(&mut self.entry.value, xml_date(text)?, "ValDt")?,
            Field::EntryRef => self.entry.bank_reference = Some(text.to_string()),
            Field::EntryInfo => self.entry.info = Some(text.to_string()),
            Field::DetailRef => self.detail.bank_reference = Some(text.to_string()),
            Field::DetailE2e => self.detail.end_to_end_id = Some(text.to_string()),
            Field::DetailAmount => once(&mut self.detail.amount, movement(text)?, "Amt")?,
            Field::DetailSign => once(
                &mut self.detail.sign,
                Direction::from_code(text)?,
                "CdtDbtInd",
            )?,
            Field::Remittance => {
                if self.detail.description.len() + text.len() > TEXT_BYTES_MAX {
                    return refuse(
                        Reason::FieldTooLong,
                        format!("remittance information over {TEXT_BYTES_MAX} bytes"),
                    );
                }
                self.detail.description.push_str(text);
            }
        }
        Ok(())
    }

    fn end_balance(&mut self) -> Result<(), FormatError> {
        let b = std::mem::take(&mut self.balance);
        let slot = match b.code.as_deref() {
            Some("OPBD" | "PRCD") => &mut self.info.opening_balance,
            Some("CLBD") => &mut self.info.closing_balance,
            _ => return Ok(()),
        };
        let (Some(amount), Some(sign)) = (b.amount, b.sign) else {
            return refuse(
                Reason::NotAStatement,
                "a booked balance without amount or CdtDbtInd",
            );
        };
        if slot.is_some() {
            return refuse(Reason::NotAStatement, "the same booked balance twice");
        }
        let amount = amount as i64;
        *slot = Some(if sign == Direction::Debit {
            -amount
        } else {
            amount
        });
        Ok(())
    }

    /// What every line of the current entry needs; refuses an entry that is not booked or lacks
    /// them (they come before `NtryDtls` in the schema).
    fn entry_head(&self) -> Result<EntryHead, FormatError> {
        let e = &self.entry;
        match e.status.as_deref() {
            Some("BOOK") => {}
            Some(other) => {
                return refuse(
                    Reason::EntryNotBooked,
                    format!("entry status is {:?}, not BOOK", crate::cut(other)),
                );
            }
            None => {
                return refuse(
                    Reason::EntryNotBooked,
                    "entry without a status (Sts) before its details or end",
                );
            }
        }
        let (Some(amount), Some(sign)) = (e.amount, e.sign) else {
            return refuse(
                Reason::NotAStatement,
                "entry without Amt and CdtDbtInd before its details",
            );
        };
        let Some(booking) = e.booking else {
            return refuse(
                Reason::DateInvalid,
                "entry without a booking date before its details",
            );
        };
        Ok((amount, sign, booking, e.value.unwrap_or(booking)))
    }

    fn end_detail(&mut self) -> Result<(), FormatError> {
        let d = std::mem::take(&mut self.detail);
        let head = self.entry_head()?;
        if d.sign.is_some_and(|s| s != head.1) {
            return refuse(
                Reason::DirectionMismatch,
                "a transaction detail's CdtDbtInd differs from its entry's",
            );
        }
        self.entry.details += 1;
        match self.entry.details {
            1 => self.entry.held = Some(d),
            2 => {
                if let Some(first) = self.entry.held.take() {
                    self.emit_detail(head, first)?;
                }
                self.emit_detail(head, d)?;
            }
            _ => self.emit_detail(head, d)?,
        }
        Ok(())
    }

    fn emit_detail(&mut self, head: EntryHead, d: Detail) -> Result<(), FormatError> {
        let Some(amount) = d.amount else {
            return refuse(
                Reason::AmountInvalid,
                "a detail of a batch entry without Amt",
            );
        };
        self.entry.detail_sum += u128::from(amount);
        let batch = Some(self.entry.number);
        self.emit(
            head,
            amount,
            d.bank_reference.unwrap_or_default(),
            d.end_to_end_id,
            d.description,
            batch,
        )
    }

    fn end_entry(&mut self) -> Result<(), FormatError> {
        let head = self.entry_head()?;
        let (amount, sign, ..) = head;
        if self.entry.details >= 2 {
            if self.entry.detail_sum != u128::from(amount) {
                return refuse(
                    Reason::SumsMismatch,
                    format!(
                        "details add up to {}, not the entry's {amount} (minor units)",
                        self.entry.detail_sum
                    ),
                );
            }
        } else {
            let d = self.entry.held.take().unwrap_or_default();
            if d.amount.is_some_and(|a| a != amount) {
                return refuse(
                    Reason::SumsMismatch,
                    "the transaction detail's amount differs from its entry's",
                );
            }
            let bank_reference = d
                .bank_reference
                .or(self.entry.bank_reference.take())
                .unwrap_or_default();
            let description = if d.description.is_empty() {
                self.entry.info.take().unwrap_or_default()
            } else {
                d.description
            };
            self.emit(
                head,
                amount,
                bank_reference,
                d.end_to_end_id,
                description,
                None,
            )?;
        }
        self.totals.add(sign, amount);
        Ok(())
    }

    fn emit(
        &mut self,
        (_, direction, booking_date, value_date): EntryHead,
        amount: u64,
        bank_reference: String,
        end_to_end_id: Option<String>,
        description: String,
        batch: Option<u64>,
    ) -> Result<(), FormatError> {
        self.lines += 1;
        let end_to_end_id = end_to_end_id
            .filter(|id| id != "NOTPROVIDED")
            .unwrap_or_default();
        (self.on_line)(StatementLine {
            index: self.lines,
            amount: amount as i64,
            direction,
            booking_date,
            value_date,
            bank_reference,
            end_to_end_id,
            description,
            batch,
        })
    }

    fn end_statement(&mut self) -> Result<(), FormatError> {
        let (t, s) = (self.totals, &self.summary);
        let net = t.net();
        let stated_net = match (s.net, s.net_sign) {
            (Some(n), Some(Direction::Debit)) => Some(-i128::from(n)),
            (n, _) => n.map(i128::from),
        };
        let actual = [
            (t.credit_count + t.debit_count, t.credit_sum + t.debit_sum),
            (t.credit_count, t.credit_sum),
            (t.debit_count, t.debit_sum),
        ];
        for (i, name) in ["TtlNtries", "TtlCdtNtries", "TtlDbtNtries"]
            .iter()
            .enumerate()
        {
            let (count, sum) = actual[i];
            let wrong_count = s.counts[i].is_some_and(|c| c != count);
            let wrong_sum = s.sums[i].is_some_and(|v| i128::from(v) != sum);
            if wrong_count || wrong_sum || (i == ALL && stated_net.is_some_and(|n| n != net)) {
                let message = format!("TxsSummry {name} does not match the entries");
                return refuse(Reason::SumsMismatch, message);
            }
        }
        if let (Some(open), Some(close)) = (self.info.opening_balance, self.info.closing_balance) {
            if i128::from(open) + net != i128::from(close) {
                return refuse(
                    Reason::BalanceMismatch,
                    format!(
                        "opening {open} + entries {net} is not the closing balance {close} (minor units)"
                    ),
                );
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<StatementInfo, FormatError> {
        if !self.root_done {
            return refuse(
                Reason::MalformedXml,
                "the document ends early (truncated file?)",
            );
        }
        if self.statements == 0 {
            return refuse(Reason::NotAStatement, "no statement in the document");
        }
        if self.info.account_number.is_empty() {
            return refuse(
                Reason::NotAStatement,
                "the statement names no account (Acct/Id)",
            );
        }
        Ok(self.info)
    }
}

fn malformed(e: impl std::fmt::Display) -> FormatError {
    FormatError::new(Reason::MalformedXml, e.to_string())
}

/// Sets a value an entry may carry once.
fn once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), FormatError> {
    if slot.is_some() {
        return refuse(Reason::MalformedXml, format!("{name} given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn count(text: &str) -> Result<u64, FormatError> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return refuse(
            Reason::MalformedXml,
            format!("NbOfNtries {:?} is not a count", crate::cut(text)),
        );
    }
    text.parse().map_err(malformed)
}

/// The calendar day of an `xs:date` (time zone ignored) or `xs:dateTime` (as written).
fn xml_date(text: &str) -> Result<Day, FormatError> {
    let (day, rest) = (text.get(..10), text.get(10..).unwrap_or(""));
    let zone_or_time = rest.is_empty()
        || rest == "Z"
        || rest.starts_with('T')
        || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')));
    match day {
        Some(day) if zone_or_time => Day::parse_iso(day),
        _ => refuse(
            Reason::DateInvalid,
            format!("{:?} is not an ISO date", crate::cut(text)),
        ),
    }
}

/// Newlines inside an event's bytes (an end tag has none that matter).
fn event_newlines(event: &Event<'_>) -> u64 {
    match event {
        Event::Start(e) | Event::Empty(e) => newlines(e),
        Event::Text(t) | Event::Comment(t) | Event::DocType(t) => newlines(t),
        Event::CData(c) => newlines(c),
        Event::PI(p) => newlines(p),
        Event::Decl(d) => newlines(d),
        Event::End(_) | Event::GeneralRef(_) | Event::Eof => 0,
    }
}

/// Counts `\n` eight bytes at a time: in `x = word ^ 0x0A…`, a byte is zero exactly where the
/// word had a newline, and `!(((x & 0x7F…) + 0x7F…) | x)` sets the high bit of exactly the zero
/// bytes (the addition cannot carry from one byte into the next).
fn newlines(bytes: &[u8]) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let mut chunks = bytes.chunks_exact(8);
    let mut n = 0u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ 0x0A0A_0A0A_0A0A_0A0A;
        n += u64::from((!(((x & LOW7) + LOW7) | x) & !LOW7).count_ones());
    }
    n + chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn newlines_are_counted_exactly() {
        let text = b"\n\x0b\n\x0a\x8a\x00\n\nab\n\n\n\n\n\n\n\n\x09\x0b\nxyz\n";
        for start in 0..text.len() {
            let slice = &text[start..];
            let naive = slice.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(super::newlines(slice), naive, "from {start}");
        }
    }
}
