//! ISO 20022 camt.053.001.08 (bank-to-customer statement) and camt.054.001.08 (debit/credit
//! notification).
//!
//! # Writing
//!
//! The element order is the schemas' (`shared/formats/iso20022/camt.05[34].001.08.xsd`), and
//! the tests validate every file written with `xmllint --schema`. Decisions:
//!
//! - Amounts carry exactly the currency's ISO 4217 decimals (`<Amt Ccy="VND">180000</Amt>`).
//!   The schema would accept `180000.00`, but ISO 20022's currency-amount rule does not.
//! - The account is `Acct/Id/Othr/Id` (Vietnamese account numbers are not IBANs) with `Ccy`,
//!   the owner's name, and the servicing bank's BIN as `Svcr/FinInstnId/Othr/Id`.
//! - camt.053 has two balances, `OPBD` and `CLBD`, both dated the business day; a negative
//!   balance is written as its absolute value with `DBIT`. Both formats carry `TxsSummry`
//!   (counts and sums of entries, and the net), which a reader can check against the entries.
//! - Every entry is `BOOK`ed, with bank transaction code `PMNT` / `RCDT` (received credit
//!   transfer) or `ICDT` (issued) / `DMCT` (domestic credit transfer). A single transaction has
//!   one `TxDtls` with its references, amount and `Ustrd`; a batch entry has one `TxDtls` per
//!   detail, and its own description goes to `AddtlNtryInf`. An empty end-to-end id is written
//!   `NOTPROVIDED`, the ISO convention; empty optional texts are left out (`Max35Text` and
//!   `Max140Text` need at least one character).
//! - Text is escaped (`& < > " '`), a carriage return is written `&#13;` so that it survives
//!   the end-of-line normalisation of XML parsers, and [`crate::clean_text`] has removed what
//!   XML 1.0 forbids.
//!
//! # Reading
//!
//! A pull parser (quick-xml) walks the document once; only the values the statement needs are
//! kept. Element names are matched without their namespace prefix, so prefixed and default
//! namespaces (and other camt versions with the same elements) read alike. Refused, with the
//! line reached and the entry number where there is one:
//!
//! - not well-formed XML, a declared encoding other than UTF-8, undefined entities, a file that
//!   ends before the document does (`MALFORMED_XML`); any `<!DOCTYPE` (`DOCTYPE_FORBIDDEN`),
//!   since entity declarations are how billion-laughs and external-entity attacks start;
//! - a root other than `Document`/`BkToCstmrStmt` (or `BkToCstmrDbtCdtNtfctn`), no statement or
//!   no account id (`NOT_A_STATEMENT`); two statements in one file (`MULTIPLE_STATEMENTS`);
//! - an account `Ccy` other than the expected currency, or a balance, entry or detail `Amt`
//!   whose `Ccy` is another or missing (`WRONG_CURRENCY`); more decimals than the currency has
//!   (`AMOUNT_DECIMALS`); a zero, negative or over-18-digit movement (`AMOUNT_INVALID`);
//! - a `CdtDbtInd` other than `CRDT`/`DBIT` (`DIRECTION_INVALID`), or a detail's that differs
//!   from its entry's (`DIRECTION_MISMATCH`); an entry not `BOOK`ed (`ENTRY_NOT_BOOKED`);
//!   dates that do not exist or an entry without a booking date (`DATE_INVALID`). An entry's
//!   `Amt`, `CdtDbtInd`, `Sts` and `BookgDt` must come before its details, where the schema
//!   puts them (the reader streams details out without holding them), else they are missing;
//! - batch details that do not add up to their entry, a single detail's amount that differs
//!   from its entry's, or a `TxsSummry` that does not match the entries (`SUMS_MISMATCH`);
//!   balances where opening (`OPBD`, or `PRCD`) + credits − debits ≠ closing (`CLBD`)
//!   (`BALANCE_MISMATCH`); a text value over 4 KiB (`FIELD_TOO_LONG`).
//!
//! Lines: an entry with two or more `TxDtls` gives one line per detail (`batch` = the entry's
//! number), each with its own amount, references and description. Other entries give one line,
//! with the detail's references when it has them, else the entry's `AcctSvcrRef`. Several
//! `Ustrd` are joined without a separator: banks split long text at 140 characters, often
//! inside a word or a payment reference. Without `Ustrd`, an entry's `AddtlNtryInf` is its
//! description. `NOTPROVIDED` as end-to-end id reads as empty. Dates given as `DtTm` are read
//! as the calendar day written.

mod read;

use std::io::Write;

pub(crate) use read::read;

use crate::common::{
    Ccy, DESCRIPTION_CHARS_MAX, NAME_CHARS_MAX, REFERENCE_CHARS_MAX, Totals, amount_text,
    check_entry, check_header, clean_text,
};
use crate::{Direction, Entry, FormatError, StatementHeader};

/// Which of the two messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Statement,
    Notification,
}

impl Kind {
    fn namespace(self) -> &'static str {
        match self {
            Kind::Statement => "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
            Kind::Notification => "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08",
        }
    }

    /// The message element and the statement element inside it.
    fn elements(self) -> (&'static str, &'static str) {
        match self {
            Kind::Statement => ("BkToCstmrStmt", "Stmt"),
            Kind::Notification => ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
        }
    }
}

/// Writes a camt.053.001.08 statement: header and balances first, then entries as they come.
pub struct Camt053Writer<W: Write>(CamtWriter<W>);

impl<W: Write> Camt053Writer<W> {
    /// Checks the header (balances must add up with its sums) and writes everything before the
    /// first entry.
    pub fn new(out: W, header: &StatementHeader) -> Result<Camt053Writer<W>, FormatError> {
        CamtWriter::new(out, header, Kind::Statement).map(Camt053Writer)
    }

    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), FormatError> {
        self.0.write_entry(entry)
    }

    /// Closes the document, checks the entries against the header's counts and sums, flushes,
    /// and gives the writer back.
    pub fn finish(self) -> Result<W, FormatError> {
        self.0.finish()
    }
}

/// Writes a camt.054.001.08 notification: like the statement, without balances.
pub struct Camt054Writer<W: Write>(CamtWriter<W>);

impl<W: Write> Camt054Writer<W> {
    /// Checks the header (its balances are not written and not checked) and writes everything
    /// before the first entry.
    pub fn new(out: W, header: &StatementHeader) -> Result<Camt054Writer<W>, FormatError> {
        CamtWriter::new(out, header, Kind::Notification).map(Camt054Writer)
    }

    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), FormatError> {
        self.0.write_entry(entry)
    }

    pub fn finish(self) -> Result<W, FormatError> {
        self.0.finish()
    }
}

struct CamtWriter<W: Write> {
    out: W,
    kind: Kind,
    ccy: Ccy,
    promised: Totals,
    written: Totals,
    xml: Xml,
}

impl<W: Write> CamtWriter<W> {
    fn new(out: W, h: &StatementHeader, kind: Kind) -> Result<CamtWriter<W>, FormatError> {
        let ccy = check_header(h, kind == Kind::Statement)?;
        let promised = Totals::of_header(h);
        let mut x = Xml::default();
        let (message, statement) = kind.elements();
        x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"");
        x.raw(kind.namespace());
        x.raw("\">\n");
        x.depth = 1;
        x.open(message);
        x.open("GrpHdr");
        x.leaf("MsgId", &h.message_id);
        x.leaf("CreDtTm", &h.created);
        x.close("GrpHdr");
        x.open(statement);
        x.leaf("Id", &h.statement_id);
        x.leaf("ElctrncSeqNb", &h.sequence_number.to_string());
        x.leaf("CreDtTm", &h.created);
        x.open("FrToDt");
        x.leaf("FrDtTm", &h.from_time);
        x.leaf("ToDtTm", &h.to_time);
        x.close("FrToDt");
        x.open("Acct");
        x.chain(&["Id", "Othr", "Id"], &h.account.number);
        x.leaf("Ccy", ccy.code);
        let owner = clean_text(&h.account.owner_name, NAME_CHARS_MAX);
        if !owner.is_empty() {
            x.chain(&["Ownr", "Nm"], &owner);
        }
        x.chain(
            &["Svcr", "FinInstnId", "Othr", "Id"],
            &h.account.servicer_bin,
        );
        x.close("Acct");
        if kind == Kind::Statement {
            for (code, balance) in [("OPBD", h.opening_balance), ("CLBD", h.closing_balance)] {
                x.open("Bal");
                x.chain(&["Tp", "CdOrPrtry", "Cd"], code);
                x.amount("Amt", balance.unsigned_abs(), ccy);
                let sign = if balance < 0 {
                    Direction::Debit
                } else {
                    Direction::Credit
                };
                x.leaf("CdtDbtInd", sign.code());
                x.chain(&["Dt", "Dt"], &h.business_date.iso());
                x.close("Bal");
            }
        }
        summary(&mut x, &promised, ccy);
        let mut w = CamtWriter {
            out,
            kind,
            ccy,
            promised,
            written: Totals::default(),
            xml: x,
        };
        w.flush_buffer()?;
        Ok(w)
    }

    fn write_entry(&mut self, e: &Entry) -> Result<(), FormatError> {
        let amount = check_entry(e)?;
        let (ccy, x) = (self.ccy, &mut self.xml);
        x.open("Ntry");
        x.amount("Amt", amount, ccy);
        x.leaf("CdtDbtInd", e.direction.code());
        x.chain(&["Sts", "Cd"], "BOOK");
        x.chain(&["BookgDt", "Dt"], &e.booking_date.iso());
        x.chain(&["ValDt", "Dt"], &e.value_date.iso());
        let bank_reference = clean_text(&e.bank_reference, REFERENCE_CHARS_MAX);
        x.leaf_if("AcctSvcrRef", &bank_reference);
        x.open("BkTxCd");
        x.open("Domn");
        x.leaf("Cd", "PMNT");
        x.open("Fmly");
        let family = match e.direction {
            Direction::Credit => "RCDT",
            Direction::Debit => "ICDT",
        };
        x.leaf("Cd", family);
        x.leaf("SubFmlyCd", "DMCT");
        x.close("Fmly");
        x.close("Domn");
        x.close("BkTxCd");
        x.open("NtryDtls");
        if e.details.is_empty() {
            let d = (&e.bank_reference, &e.end_to_end_id, &e.description);
            transaction(x, d, amount, e.direction, ccy);
        } else {
            for d in &e.details {
                let refs = (&d.bank_reference, &d.end_to_end_id, &d.description);
                transaction(x, refs, d.amount.unsigned_abs(), e.direction, ccy);
            }
        }
        x.close("NtryDtls");
        if !e.details.is_empty() {
            x.leaf_if(
                "AddtlNtryInf",
                &clean_text(&e.description, DESCRIPTION_CHARS_MAX),
            );
        }
        x.close("Ntry");
        self.written.add(e.direction, amount);
        self.flush_buffer()
    }

    fn finish(mut self) -> Result<W, FormatError> {
        // Checked first: a file with fewer or more entries than announced is left unclosed.
        self.promised.check_written(&self.written)?;
        let (message, statement) = self.kind.elements();
        self.xml.close(statement);
        self.xml.close(message);
        self.xml.raw("</Document>\n");
        self.flush_buffer()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn flush_buffer(&mut self) -> Result<(), FormatError> {
        self.out.write_all(self.xml.buf.as_bytes())?;
        self.xml.buf.clear();
        Ok(())
    }
}

/// `TxsSummry`: all entries with their net, then credits, then debits.
fn summary(x: &mut Xml, t: &Totals, ccy: Ccy) {
    let decimal = |v: i128| amount_text(v.unsigned_abs() as u64, ccy.units, '.', false);
    x.open("TxsSummry");
    x.open("TtlNtries");
    x.leaf("NbOfNtries", &(t.credit_count + t.debit_count).to_string());
    x.leaf("Sum", &decimal(t.credit_sum + t.debit_sum));
    x.open("TtlNetNtry");
    x.leaf("Amt", &decimal(t.net()));
    let sign = if t.net() < 0 {
        Direction::Debit
    } else {
        Direction::Credit
    };
    x.leaf("CdtDbtInd", sign.code());
    x.close("TtlNetNtry");
    x.close("TtlNtries");
    for (name, count, sum) in [
        ("TtlCdtNtries", t.credit_count, t.credit_sum),
        ("TtlDbtNtries", t.debit_count, t.debit_sum),
    ] {
        x.open(name);
        x.leaf("NbOfNtries", &count.to_string());
        x.leaf("Sum", &decimal(sum));
        x.close(name);
    }
    x.close("TxsSummry");
}

/// One `TxDtls`: references, amount, direction and remittance text.
fn transaction(
    x: &mut Xml,
    (bank_reference, end_to_end_id, description): (&String, &String, &String),
    amount: u64,
    direction: Direction,
    ccy: Ccy,
) {
    x.open("TxDtls");
    x.open("Refs");
    x.leaf_if(
        "AcctSvcrRef",
        &clean_text(bank_reference, REFERENCE_CHARS_MAX),
    );
    let e2e = clean_text(end_to_end_id, REFERENCE_CHARS_MAX);
    x.leaf(
        "EndToEndId",
        if e2e.is_empty() { "NOTPROVIDED" } else { &e2e },
    );
    x.close("Refs");
    x.amount("Amt", amount, ccy);
    x.leaf("CdtDbtInd", direction.code());
    let text = clean_text(description, DESCRIPTION_CHARS_MAX);
    if !text.is_empty() {
        x.chain(&["RmtInf", "Ustrd"], &text);
    }
    x.close("TxDtls");
}

/// An indented XML fragment being built; the writer empties it into its output after the
/// header and after each entry.
#[derive(Default)]
struct Xml {
    buf: String,
    depth: usize,
}

impl Xml {
    fn raw(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    fn indent(&mut self) {
        const SPACES: &str = "                                                                ";
        let n = (2 * self.depth).min(SPACES.len());
        self.buf.push_str(&SPACES[..n]);
    }

    fn open(&mut self, name: &str) {
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.chain(&[name], text);
    }

    fn leaf_if(&mut self, name: &str, text: &str) {
        if !text.is_empty() {
            self.leaf(name, text);
        }
    }

    /// Nested elements on one line: `<Sts><Cd>BOOK</Cd></Sts>`.
    fn chain(&mut self, names: &[&str], text: &str) {
        self.indent();
        for name in names {
            self.buf.push('<');
            self.buf.push_str(name);
            self.buf.push('>');
        }
        escape_into(&mut self.buf, text);
        for name in names.iter().rev() {
            self.buf.push_str("</");
            self.buf.push_str(name);
            self.buf.push('>');
        }
        self.buf.push('\n');
    }

    fn amount(&mut self, name: &str, minor: u64, ccy: Ccy) {
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(" Ccy=\"");
        self.buf.push_str(ccy.code);
        self.buf.push_str("\">");
        self.buf
            .push_str(&amount_text(minor, ccy.units, '.', false));
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }
}

fn escape_into(buf: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' => buf.push_str("&quot;"),
            '\'' => buf.push_str("&apos;"),
            '\r' => buf.push_str("&#13;"),
            c if crate::common::xml_char(c) => buf.push(c),
            _ => {}
        }
    }
}
