//! Each refusal, on the sample statement's file made wrong in one place; what is accepted although
//! it differs from what the writers produce (prefixes, BOM, CRLF, LF, envelopes); and what the
//! writers refuse to write.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use paymesh_formats::{Day, Direction, Entry, Format, Reason, StatementHeader};

use Reason::*;

fn written(format: Format) -> String {
    String::from_utf8(write(format, &sample()).unwrap()).unwrap()
}

/// The reason, line and entry with which `text` is refused as `format` in VND.
fn refusal(format: Format, text: &str) -> (Reason, Option<u64>, Option<u64>) {
    let e = read(format, text.as_bytes(), "VND").expect_err("must be refused");
    assert!(e.to_string().starts_with(e.code()), "{e}");
    (e.reason, e.line, e.entry)
}

/// Each case edits the first `from` of the sample's file into `to`; the result is refused.
fn assert_edits_refused(format: Format, cases: &[(&str, &str, Reason)]) {
    let text = written(format);
    for &(from, to, reason) in cases {
        assert!(text.contains(from), "{format:?}: no {from:?}");
        let edited = text.replacen(from, to, 1);
        assert_eq!(
            refusal(format, &edited).0,
            reason,
            "{format:?}: {from:?} -> {to:?}"
        );
    }
}

#[test]
fn xml_with_a_doctype_is_refused_whatever_it_declares() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document><BkToCstmrStmt><GrpHdr><MsgId>&lol9;</MsgId></GrpHdr></BkToCstmrStmt></Document>"#;
    assert_eq!(
        refusal(Format::Camt053, laughs),
        (DoctypeForbidden, Some(7), None)
    );
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document>&xxe;</Document>"#;
    assert_eq!(refusal(Format::Camt054, xxe).0, DoctypeForbidden);
    assert_edits_refused(
        Format::Camt053,
        &[
            (
                "<Document ",
                "<!DOCTYPE Document>\n<Document ",
                DoctypeForbidden,
            ),
            // Without a DOCTYPE an entity is undefined: not well-formed.
            ("Tiền điện T12", "&xxe;", MalformedXml),
        ],
    );
}

#[test]
fn xml_that_is_not_well_formed_or_ends_early_is_refused() {
    let xml = written(Format::Camt053);
    for cut in [0, 10, xml.len() / 2, xml.len() - 12] {
        assert_eq!(
            refusal(Format::Camt053, &xml[..cut]).0,
            MalformedXml,
            "cut at {cut}"
        );
    }
    assert_eq!(
        refusal(Format::Camt053, &format!("{xml}<Document/>")).0,
        MalformedXml
    );
    assert_edits_refused(
        Format::Camt053,
        &[
            ("<Cd>BOOK</Cd></Sts>", "<Cd>BOOK</Sts></Cd>", MalformedXml),
            (
                "encoding=\"UTF-8\"",
                "encoding=\"ISO-8859-1\"",
                MalformedXml,
            ),
            ("Tiền điện", "Tiền&#1;điện", MalformedXml),
            ("Tiền điện", "Tiền\u{1}điện", MalformedXml),
            ("<Sts>", "<Amt Ccy=\"VND\">1</Amt><Sts>", MalformedXml),
            (
                "<Amt Ccy=\"VND\">180000",
                "<Amt Ccy=\"VND\" Ccy=\"VND\">180000",
                MalformedXml,
            ),
            ("Tiền điện T12", &"x".repeat(5000), FieldTooLong),
        ],
    );
}

#[test]
fn camt_amounts_currencies_dates_and_codes_are_checked() {
    let usd = written(Format::Camt053).replacen("VND\">180000<", "USD\">180000<", 1);
    let (reason, line, entry) = refusal(Format::Camt053, &usd);
    assert_eq!(
        (reason, line.is_some(), entry),
        (WrongCurrency, true, Some(1))
    );
    let ok = written(Format::Camt053);
    assert_eq!(
        read(Format::Camt053, ok.as_bytes(), "USD")
            .unwrap_err()
            .reason,
        WrongCurrency
    );
    let cases = [
        ("<Ccy>VND</Ccy>", "<Ccy>USD</Ccy>", WrongCurrency),
        (
            "<Amt Ccy=\"VND\">1000000<",
            "<Amt Ccy=\"EUR\">1000000<",
            WrongCurrency,
        ),
        ("<Amt Ccy=\"VND\">100000<", "<Amt>100000<", WrongCurrency),
        (">180000</Amt>", ">180000.00</Amt>", AmountDecimals),
        (">180000</Amt>", ">180000.5</Amt>", AmountDecimals),
        (">180000</Amt>", ">-180000</Amt>", AmountInvalid),
        (">180000</Amt>", ">0</Amt>", AmountInvalid),
        (">180000</Amt>", ">1e5</Amt>", AmountInvalid),
        (">180000</Amt>", ">1000000000000000000</Amt>", AmountInvalid),
        (">180000</Amt>", "></Amt>", AmountInvalid),
        (
            "<CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts>",
            "<CdtDbtInd>DEBT</CdtDbtInd><Sts>",
            DirectionInvalid,
        ),
        ("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>", EntryNotBooked),
        (
            "<BookgDt><Dt>2026-12-01",
            "<BookgDt><Dt>2026-02-30",
            DateInvalid,
        ),
        ("<BookgDt><Dt>2026-12-01</Dt></BookgDt>", "", DateInvalid),
        ("<FrDtTm>2026-12-01T", "<FrDtTm>2026-13-01T", DateInvalid),
    ];
    assert_edits_refused(Format::Camt053, &cases);
    assert_edits_refused(Format::Camt054, &cases[3..]);
    // Whitespace around a value is XML's, not the amount's.
    let spaced = ok.replacen(">180000</Amt>", ">\n  180000\n</Amt>", 1);
    assert!(read(Format::Camt053, spaced.as_bytes(), "VND").is_ok());
}

#[test]
fn camt_sums_balances_and_statement_structure_are_checked() {
    let batch = written(Format::Camt053).replacen(">200000<", ">200001<", 1);
    assert_eq!(
        refusal(Format::Camt053, &batch).2,
        Some(2),
        "the batch entry"
    );
    assert_edits_refused(
        Format::Camt053,
        &[
            (">200000<", ">200001<", SumsMismatch),
            (
                ">50000</Amt>\n            <CdtDbtInd>",
                ">50001</Amt><CdtDbtInd>",
                SumsMismatch,
            ),
            (
                "<NbOfNtries>3</NbOfNtries>",
                "<NbOfNtries>4</NbOfNtries>",
                SumsMismatch,
            ),
            ("<Sum>480000</Sum>", "<Sum>480001</Sum>", SumsMismatch),
            ("<Amt>430000</Amt>", "<Amt>430001</Amt>", SumsMismatch),
            (">1430000<", ">1430001<", BalanceMismatch),
            (
                "CRDT</CdtDbtInd>\n            <RmtInf><Ustrd>Tiền",
                "DBIT</CdtDbtInd><RmtInf><Ustrd>Tiền",
                DirectionMismatch,
            ),
            (
                "<Id><Othr><Id>0011001234567</Id></Othr></Id>",
                "",
                NotAStatement,
            ),
            ("<BkToCstmrStmt>", "<BkToCstmrDbtCdtNtfctn>", NotAStatement),
        ],
    );
    assert_eq!(
        refusal(Format::Camt054, &written(Format::Camt053)).0,
        NotAStatement
    );
    assert_eq!(
        refusal(Format::Camt053, "<Document><Other/></Document>").0,
        NotAStatement
    );
    assert_eq!(refusal(Format::Camt053, "<html/>").0, NotAStatement);
    let xml = written(Format::Camt053);
    let (start, end) = (
        xml.find("    <Stmt>").unwrap(),
        xml.find("    </Stmt>\n").unwrap() + 12,
    );
    let two = format!("{}{}", &xml[..end], &xml[start..]);
    assert_eq!(refusal(Format::Camt053, &two).0, MultipleStatements);
}

#[test]
fn xml_with_prefixes_bom_crlf_comments_and_cdata_reads_like_the_original() {
    let xml = written(Format::Camt053);
    let expected = read(Format::Camt053, xml.as_bytes(), "VND").unwrap();
    let prefixed = xml
        .replace("</", "\u{0}")
        .replace('<', "<c:")
        .replace('\u{0}', "</c:")
        .replace("<c:?xml", "<?xml")
        .replace("xmlns=", "xmlns:c=");
    let variant = format!("\u{FEFF}{}", prefixed.replace('\n', "\r\n"));
    assert!(variant.contains("<c:Ntry>"));
    assert_eq!(
        read(Format::Camt053, variant.as_bytes(), "VND").unwrap(),
        expected
    );
    let commented = xml
        .replacen("<Ntry>", "<!-- a comment --><?pi x?><Ntry>", 1)
        .replacen("Tiền điện T12", "<![CDATA[Tiền điện]]> T12", 1);
    assert_eq!(
        read(Format::Camt053, commented.as_bytes(), "VND").unwrap(),
        expected
    );
}

#[test]
fn csv_without_header_or_trailer_or_with_wrong_rows_is_refused() {
    let csv = written(Format::Csv);
    let rows: Vec<&str> = csv.split_inclusive("\r\n").collect();
    assert_eq!(refusal(Format::Csv, &rows[1..].concat()).0, NotAStatement);
    let truncated = rows[..rows.len() - 1].concat();
    assert_eq!(
        refusal(Format::Csv, &truncated),
        (TrailerMismatch, Some(4), None)
    );
    let decimals = csv.replacen(",180000,", ",180000.00,", 1);
    assert_eq!(
        refusal(Format::Csv, &decimals),
        (AmountDecimals, Some(2), Some(1))
    );
    let after = format!("{csv}2026-12-01,2026-12-01,CRDT,1,VND,a,b,c\r\n");
    assert_eq!(refusal(Format::Csv, &after).0, MalformedCsv);
    assert_edits_refused(
        Format::Csv,
        &[
            ("TRAILER,3,", "TRAILER,2,", TrailerMismatch),
            (",480000,50000", ",480001,50000", TrailerMismatch),
            (",480000,50000", ",480000", TrailerMismatch),
            (",180000,", ",0,", AmountInvalid),
            (",VND,FT26335000003", ",USD,FT26335000003", WrongCurrency),
            (",DBIT,", ",DEBIT,", DirectionInvalid),
            (
                "2026-12-01,2026-12-01,CRDT",
                "2026-11-31,2026-12-01,CRDT",
                DateInvalid,
            ),
            (",FT26335000001,", ",FT\"26335000001,", MalformedCsv),
            (",FT26335000001,", ",\"FT26335000001\"x,", MalformedCsv),
            (",FT26335000001,", ",\"FT26335000001,", MalformedCsv),
            (",FT26335000001,", ",", MalformedCsv),
            ("\r\n2026", "\r\n\r\n2026", MalformedCsv),
            ("NGUYEN VAN A", &"A".repeat(20_000), FieldTooLong),
        ],
    );
    // LF line ends, a BOM and quotes where none are needed are fine.
    let relaxed = csv
        .replace("\r\n", "\n")
        .replacen(",FT26335000001,", ",\"FT26335000001\",", 1);
    let relaxed = format!("\u{FEFF}{relaxed}");
    let expected = read(Format::Csv, csv.as_bytes(), "VND").unwrap();
    assert_eq!(
        read(Format::Csv, relaxed.as_bytes(), "VND").unwrap(),
        expected
    );
}

#[test]
fn csv_quotes_commas_quotes_and_line_breaks() {
    let mut e = entry(1, Direction::Credit, "a,b", "say \"hi\",\r\nthen =1+1");
    e.end_to_end_id = "\"".into();
    let s = Statement {
        header: header_for("VND", 0, std::slice::from_ref(&e)),
        entries: vec![e],
    };
    let csv = String::from_utf8(write(Format::Csv, &s).unwrap()).unwrap();
    let row = ",\"a,b\",\"\"\"\",\"say \"\"hi\"\",\r\nthen =1+1\"\r\nTRAILER,1,1,0\r\n";
    assert!(csv.contains(row), "{csv}");
    assert_eq!(
        read(Format::Csv, csv.as_bytes(), "VND").unwrap().1,
        expected_lines(Format::Csv, &s)
    );
}

#[test]
fn mt940_with_broken_lines_balances_or_structure_is_refused() {
    let mt = written(Format::Mt940);
    let no_comma = mt.replacen("C180000,NTRF", "C180000NTRF", 1);
    assert_eq!(
        refusal(Format::Mt940, &no_comma),
        (AmountInvalid, Some(5), Some(1))
    );
    let usd = mt.replacen(":60F:C261201VND", ":60F:C261201USD", 1);
    assert_eq!(refusal(Format::Mt940, &usd), (WrongCurrency, Some(4), None));
    assert_edits_refused(
        Format::Mt940,
        &[
            ("C180000,NTRF", "C180000,00NTRF", AmountDecimals),
            ("C180000,NTRF", "C0,NTRF", AmountInvalid),
            ("C180000,NTRF", "C1234567890123456,NTRF", AmountInvalid),
            ("C180000,NTRF", "X180000,NTRF", DirectionInvalid),
            ("C180000,NTRF", "C180000,", MalformedMt940),
            (":61:2612011201", ":61:2613011201", DateInvalid),
            (":61:2612011201", ":61:2612010231", DateInvalid),
            (":61:2612011201", ":61:26120", MalformedMt940),
            (":62F:C261201VND", ":62F:C261201EUR", WrongCurrency),
            (
                ":62F:C261201VND1430000,",
                ":62F:C261201VND1430001,",
                BalanceMismatch,
            ),
            (":62F:C261201VND1430000,\r\n", "", MalformedMt940),
            (":25:970436/0011001234567\r\n", "", MalformedMt940),
            (":28C:", ":99X:", MalformedMt940),
            (":20:", "hello\r\n:20:", NotAStatement),
            (":20:PMSTMT-970436-20\r\n", "", NotAStatement),
            ("-\r\n", "-\r\n:20:X\r\n", MultipleStatements),
            ("-\r\n", "-\r\nmore\r\n", MalformedMt940),
        ],
    );
    assert_eq!(
        refusal(Format::Mt940, &mt[..mt.find(":61:").unwrap()]).0,
        MalformedMt940
    );
    assert_eq!(
        refusal(Format::Mt940, &format!("{mt}{mt}")).0,
        MultipleStatements
    );
    assert_eq!(refusal(Format::Mt940, "not a statement").0, NotAStatement);
}

#[test]
fn mt940_in_an_envelope_with_lf_or_without_end_mark_reads_like_the_original() {
    let mt = written(Format::Mt940);
    let expected = read(Format::Mt940, mt.as_bytes(), "VND").unwrap();
    let block4 = mt.trim_end_matches("-\r\n");
    let envelope = format!(
        "{{1:F01BFTVVNVXAXXX0000000000}}{{2:O9401200261201BFTVVNVXAXXX00000000002612011200N}}{{4:\r\n{block4}-}}{{5:{{CHK:0123456789AB}}}}\r\n"
    );
    for variant in [envelope, mt.replace("\r\n", "\n"), mt.replace("-\r\n", "")] {
        assert_eq!(
            read(Format::Mt940, variant.as_bytes(), "VND").unwrap(),
            expected
        );
    }
    let reversal = mt.replacen("C180000,NTRF", "RD180000,NTRF", 1);
    let (_, lines) = read(Format::Mt940, reversal.as_bytes(), "VND").unwrap();
    assert_eq!(
        lines[0].direction,
        Direction::Credit,
        "a reversed debit is money in"
    );
}

type HeaderEdit = fn(&mut StatementHeader);
type EntryEdit = fn(&mut Entry);

#[test]
fn writers_refuse_headers_they_cannot_write() {
    let s = sample();
    let header_cases: [(HeaderEdit, Reason); 8] = [
        (|h| h.account.servicer_bin = "97043".into(), InvalidInput),
        (|h| h.account.currency = "XAU".into(), InvalidInput),
        (|h| h.message_id = "x".repeat(36), InvalidInput),
        (|h| h.statement_id = String::new(), InvalidInput),
        (|h| h.created = "2026-12-01 16:00".into(), InvalidInput),
        (|h| h.account.number = " 123".into(), InvalidInput),
        (|h| h.business_date.day = 32, DateInvalid),
        (|h| h.credit_sum = -1, InvalidInput),
    ];
    for format in FORMATS {
        for (change, reason) in header_cases {
            let mut header = s.header.clone();
            change(&mut header);
            let e = write(
                format,
                &Statement {
                    header,
                    entries: vec![],
                },
            )
            .unwrap_err();
            assert_eq!(e.reason, reason, "{format:?}");
        }
        let mut unbalanced = s.clone();
        unbalanced.header.closing_balance += 1;
        let checked = matches!(format, Format::Camt053 | Format::Mt940);
        let got = write(format, &unbalanced).err().map(|e| e.reason);
        assert_eq!(got, checked.then_some(BalanceMismatch), "{format:?}");
        let mut miscounted = s.clone();
        miscounted.header.credit_count += 1;
        let e = write(format, &miscounted).unwrap_err();
        assert_eq!(
            e.reason, SumsMismatch,
            "{format:?}: counts are checked at finish"
        );
    }
}

#[test]
fn writers_refuse_entries_they_cannot_write() {
    let s = sample();
    let entry_cases: [(EntryEdit, Reason); 4] = [
        (|e| e.amount = 0, AmountInvalid),
        (|e| e.details[0].amount += 1, SumsMismatch),
        (|e| e.details.truncate(1), InvalidInput),
        (
            |e| {
                e.value_date = Day {
                    year: 2026,
                    month: 2,
                    day: 29,
                }
            },
            DateInvalid,
        ),
    ];
    for format in FORMATS {
        for (change, reason) in entry_cases {
            let mut batch = s.entries[1].clone();
            change(&mut batch);
            let mut w = AnyWriter::new(format, Vec::new(), &s.header).unwrap();
            assert_eq!(
                w.write_entry(&batch).unwrap_err().reason,
                reason,
                "{format:?}"
            );
        }
    }
    let mut far = s.entries[0].clone();
    far.value_date = day(2027, 12, 1);
    let mut w = AnyWriter::new(Format::Mt940, Vec::new(), &s.header).unwrap();
    assert_eq!(
        w.write_entry(&far).unwrap_err().reason,
        DateInvalid,
        "MMDD could not say the year"
    );
    let huge = vec![entry(1_000_000_000_000_000, Direction::Credit, "R", "")];
    let s = Statement {
        header: header_for("VND", 0, &huge),
        entries: huge,
    };
    assert_eq!(
        write(Format::Mt940, &s).unwrap_err().reason,
        AmountInvalid,
        "15 characters"
    );
    assert!(write(Format::Camt053, &s).is_ok());
}
