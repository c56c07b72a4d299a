//! Each refusal, on a valid file made wrong in one place; and what is accepted although it
//! differs from what the writers produce (namespace prefixes, BOM, CRLF, LF, envelopes).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use paymesh_formats::{Direction, Format, Reason};

fn written(format: Format) -> String {
    String::from_utf8(write(format, &sample()).unwrap()).unwrap()
}

/// The reason, line and entry with which `text` is refused as `format` in VND.
fn refusal(format: Format, text: &str) -> (Reason, Option<u64>, Option<u64>) {
    let e = read(format, text.as_bytes(), "VND").expect_err("must be refused");
    assert!(e.to_string().starts_with(e.code()), "{e}");
    (e.reason, e.line, e.entry)
}

fn reason(format: Format, text: &str) -> Reason {
    refusal(format, text).0
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
        (Reason::DoctypeForbidden, Some(7), None)
    );
    let external = r#"<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Document>&xxe;</Document>"#;
    assert_eq!(reason(Format::Camt054, external), Reason::DoctypeForbidden);
    let bare =
        written(Format::Camt053).replacen("<Document ", "<!DOCTYPE Document>\n<Document ", 1);
    assert_eq!(reason(Format::Camt053, &bare), Reason::DoctypeForbidden);
    // Without a DOCTYPE an entity is undefined: not well-formed.
    let undefined = written(Format::Camt053).replace("Tiền điện T12", "&xxe;");
    assert_eq!(reason(Format::Camt053, &undefined), Reason::MalformedXml);
}

#[test]
fn xml_that_is_not_well_formed_or_ends_early_is_refused() {
    let xml = written(Format::Camt053);
    for cut in [10, xml.len() / 2, xml.len() - 12] {
        assert_eq!(
            reason(Format::Camt053, &xml[..cut]),
            Reason::MalformedXml,
            "cut at {cut}"
        );
    }
    let crossed = xml.replacen("<Cd>BOOK</Cd></Sts>", "<Cd>BOOK</Sts></Cd>", 1);
    assert_eq!(refusal(Format::Camt053, &crossed).0, Reason::MalformedXml);
    let latin1 = xml.replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    assert_eq!(reason(Format::Camt053, &latin1), Reason::MalformedXml);
    let control = xml.replacen("Tiền điện", "Tiền&#1;điện", 1);
    assert_eq!(reason(Format::Camt053, &control), Reason::MalformedXml);
    let second_root = format!("{xml}<Document/>");
    assert_eq!(reason(Format::Camt053, &second_root), Reason::MalformedXml);
    assert_eq!(reason(Format::Camt053, ""), Reason::MalformedXml);
}

#[test]
fn amounts_in_another_currency_are_refused() {
    let xml = written(Format::Camt053);
    let usd = xml.replacen(
        "<Amt Ccy=\"VND\">180000</Amt>",
        "<Amt Ccy=\"USD\">180000</Amt>",
        1,
    );
    let (r, line, entry) = refusal(Format::Camt053, &usd);
    assert_eq!((r, entry), (Reason::WrongCurrency, Some(1)));
    assert!(line.is_some());
    let account = xml.replace("<Ccy>VND</Ccy>", "<Ccy>USD</Ccy>");
    assert_eq!(reason(Format::Camt053, &account), Reason::WrongCurrency);
    let balance = xml.replacen(
        "<Amt Ccy=\"VND\">1000000</Amt>",
        "<Amt Ccy=\"EUR\">1000000</Amt>",
        1,
    );
    assert_eq!(reason(Format::Camt053, &balance), Reason::WrongCurrency);
    let detail = xml.replacen("<Amt Ccy=\"VND\">100000</Amt>", "<Amt>100000</Amt>", 1);
    assert_eq!(refusal(Format::Camt053, &detail).2, Some(2));
    assert_eq!(
        read(Format::Camt053, xml.as_bytes(), "USD")
            .unwrap_err()
            .reason,
        Reason::WrongCurrency
    );
}

#[test]
fn vnd_amounts_with_decimals_zero_or_too_long_are_refused() {
    let xml = written(Format::Camt054);
    let amount = |text: &str| xml.replacen(">180000</Amt>", &format!(">{text}</Amt>"), 1);
    let (r, line, entry) = refusal(Format::Camt054, &amount("180000.00"));
    assert_eq!((r, entry), (Reason::AmountDecimals, Some(1)));
    assert!(line.is_some());
    assert_eq!(
        reason(Format::Camt054, &amount("180000.5")),
        Reason::AmountDecimals
    );
    for bad in ["-180000", "0", "1e5", "1000000000000000000", "", "18 0000"] {
        assert_eq!(
            reason(Format::Camt054, &amount(bad)),
            Reason::AmountInvalid,
            "{bad:?}"
        );
    }
    // Whitespace around a value is XML's, not the amount's.
    assert!(read(Format::Camt054, amount("\n  180000\n").as_bytes(), "VND").is_ok());
}

#[test]
fn unknown_indicators_statuses_and_dates_are_refused() {
    let xml = written(Format::Camt053);
    let sign = xml.replacen(
        "<CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts>",
        "<CdtDbtInd>DEBT</CdtDbtInd>\n        <Sts>",
        1,
    );
    assert_eq!(refusal(Format::Camt053, &sign).0, Reason::DirectionInvalid);
    let pending = xml.replacen("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>", 1);
    assert_eq!(refusal(Format::Camt053, &pending).2, Some(1));
    assert_eq!(reason(Format::Camt053, &pending), Reason::EntryNotBooked);
    let date = xml.replacen(
        "<BookgDt><Dt>2026-12-01</Dt>",
        "<BookgDt><Dt>2026-02-30</Dt>",
        1,
    );
    assert_eq!(reason(Format::Camt053, &date), Reason::DateInvalid);
    let no_booking = xml.replacen("<BookgDt><Dt>2026-12-01</Dt></BookgDt>", "", 1);
    assert_eq!(reason(Format::Camt053, &no_booking), Reason::DateInvalid);
    let twice = xml.replacen("<Sts>", "<Amt Ccy=\"VND\">1</Amt><Sts>", 1);
    assert_eq!(reason(Format::Camt053, &twice), Reason::MalformedXml);
}

#[test]
fn sums_that_do_not_add_up_are_refused() {
    let xml = written(Format::Camt053);
    let batch = xml.replacen(
        "<Amt Ccy=\"VND\">200000</Amt>",
        "<Amt Ccy=\"VND\">200001</Amt>",
        1,
    );
    assert_eq!(refusal(Format::Camt053, &batch).0, Reason::SumsMismatch);
    assert_eq!(refusal(Format::Camt053, &batch).2, Some(2));
    let single = xml.replacen(
        "<Amt Ccy=\"VND\">50000</Amt>\n            <CdtDbtInd>DBIT",
        "<Amt Ccy=\"VND\">50001</Amt>\n            <CdtDbtInd>DBIT",
        1,
    );
    assert_eq!(reason(Format::Camt053, &single), Reason::SumsMismatch);
    let summary = xml.replacen(
        "<NbOfNtries>3</NbOfNtries>",
        "<NbOfNtries>4</NbOfNtries>",
        1,
    );
    assert_eq!(reason(Format::Camt053, &summary), Reason::SumsMismatch);
    let closing = xml.replacen(
        "<Amt Ccy=\"VND\">1430000</Amt>",
        "<Amt Ccy=\"VND\">1430001</Amt>",
        1,
    );
    assert_eq!(reason(Format::Camt053, &closing), Reason::BalanceMismatch);
    let detail_sign = xml.replacen(
        "<CdtDbtInd>CRDT</CdtDbtInd>\n            <RmtInf><Ustrd>Tiền",
        "<CdtDbtInd>DBIT</CdtDbtInd>\n            <RmtInf><Ustrd>Tiền",
        1,
    );
    assert_eq!(
        reason(Format::Camt053, &detail_sign),
        Reason::DirectionMismatch
    );
}

#[test]
fn the_wrong_message_or_two_statements_are_refused() {
    assert_eq!(
        reason(Format::Camt054, &written(Format::Camt053)),
        Reason::NotAStatement
    );
    assert_eq!(
        reason(Format::Camt053, "<Document><Other/></Document>"),
        Reason::NotAStatement
    );
    assert_eq!(reason(Format::Camt053, "<html/>"), Reason::NotAStatement);
    let xml = written(Format::Camt053);
    let start = xml.find("    <Stmt>").unwrap();
    let end = xml.find("    </Stmt>\n").unwrap() + "    </Stmt>\n".len();
    let two = format!("{}{}", &xml[..end], &xml[start..]);
    assert_eq!(reason(Format::Camt053, &two), Reason::MultipleStatements);
    let no_account = xml.replace("<Id><Othr><Id>0011001234567</Id></Othr></Id>", "");
    assert_eq!(reason(Format::Camt053, &no_account), Reason::NotAStatement);
    let long = xml.replacen("Tiền điện T12", &"x".repeat(5000), 1);
    assert_eq!(reason(Format::Camt053, &long), Reason::FieldTooLong);
}

#[test]
fn xml_with_prefixes_bom_and_crlf_reads_like_the_original() {
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
fn csv_without_header_trailer_or_with_wrong_sums_is_refused() {
    let csv = written(Format::Csv);
    let rows: Vec<&str> = csv.split_inclusive("\r\n").collect();
    assert_eq!(
        reason(Format::Csv, &rows[1..].concat()),
        Reason::NotAStatement
    );
    let truncated = rows[..rows.len() - 1].concat();
    assert_eq!(
        refusal(Format::Csv, &truncated),
        (Reason::TrailerMismatch, Some(4), None)
    );
    let count = csv.replace("TRAILER,3,", "TRAILER,2,");
    assert_eq!(
        refusal(Format::Csv, &count),
        (Reason::TrailerMismatch, Some(5), None)
    );
    assert_eq!(
        reason(Format::Csv, &csv.replace(",480000,50000", ",480001,50000")),
        Reason::TrailerMismatch
    );
    assert_eq!(
        reason(Format::Csv, &csv.replace(",480000,50000", ",480000")),
        Reason::TrailerMismatch
    );
    assert_eq!(
        reason(
            Format::Csv,
            &format!("{csv}2026-12-01,2026-12-01,CRDT,1,VND,a,b,c\r\n")
        ),
        Reason::MalformedCsv
    );
    let row = |from: &str, to: &str| csv.replacen(from, to, 1);
    assert_eq!(
        refusal(Format::Csv, &row(",180000,", ",180000.00,")),
        (Reason::AmountDecimals, Some(2), Some(1))
    );
    assert_eq!(
        reason(Format::Csv, &row(",180000,", ",0,")),
        Reason::AmountInvalid
    );
    assert_eq!(
        reason(
            Format::Csv,
            &row(",VND,FT26335000003", ",USD,FT26335000003")
        ),
        Reason::WrongCurrency
    );
    assert_eq!(
        reason(Format::Csv, &row(",DBIT,", ",DEBIT,")),
        Reason::DirectionInvalid
    );
    assert_eq!(
        reason(
            Format::Csv,
            &row("2026-12-01,2026-12-01,CRDT", "2026-11-31,2026-12-01,CRDT")
        ),
        Reason::DateInvalid
    );
    assert_eq!(
        reason(Format::Csv, &row(",FT26335000001,", ",FT\"26335000001,")),
        Reason::MalformedCsv
    );
    assert_eq!(
        reason(Format::Csv, &row(",FT26335000001,", ",\"FT26335000001\"x,")),
        Reason::MalformedCsv
    );
    assert_eq!(
        reason(Format::Csv, &row(",FT26335000001,", ",\"FT26335000001,")),
        Reason::MalformedCsv
    );
    assert_eq!(
        reason(Format::Csv, &row(",FT26335000001,", ",")),
        Reason::MalformedCsv
    );
    assert_eq!(
        reason(Format::Csv, &row("\r\n2026", "\r\n\r\n2026")),
        Reason::MalformedCsv
    );
    assert_eq!(
        reason(Format::Csv, &row("NGUYEN VAN A", &"A".repeat(20_000))),
        Reason::FieldTooLong
    );
    // LF line ends, a BOM and quoting where none is needed are fine.
    let relaxed = format!(
        "\u{FEFF}{}",
        csv.replace("\r\n", "\n")
            .replacen(",FT26335000001,", ",\"FT26335000001\",", 1)
    );
    assert_eq!(
        read(Format::Csv, relaxed.as_bytes(), "VND").unwrap(),
        read(Format::Csv, csv.as_bytes(), "VND").unwrap()
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
    assert!(
        csv.contains(",\"a,b\",\"\"\"\",\"say \"\"hi\"\",\r\nthen =1+1\"\r\nTRAILER,1,1,0\r\n"),
        "{csv}"
    );
    assert_eq!(
        read(Format::Csv, csv.as_bytes(), "VND").unwrap().1,
        expected_lines(Format::Csv, &s)
    );
}

#[test]
fn mt940_with_broken_lines_or_balances_is_refused() {
    let mt = written(Format::Mt940);
    let at = |from: &str, to: &str| mt.replacen(from, to, 1);
    assert_eq!(
        refusal(
            Format::Mt940,
            &at(":61:2612011201C180000,NTRF", ":61:2612011201C180000NTRF")
        ),
        (Reason::AmountInvalid, Some(5), Some(1))
    );
    assert_eq!(
        reason(Format::Mt940, &at("C180000,NTRF", "C180000,00NTRF")),
        Reason::AmountDecimals
    );
    assert_eq!(
        reason(Format::Mt940, &at("C180000,NTRF", "C0,NTRF")),
        Reason::AmountInvalid
    );
    assert_eq!(
        reason(Format::Mt940, &at("C180000,NTRF", "X180000,NTRF")),
        Reason::DirectionInvalid
    );
    assert_eq!(
        reason(Format::Mt940, &at("C180000,NTRF", "C180000,")),
        Reason::MalformedMt940
    );
    assert_eq!(
        reason(Format::Mt940, &at(":61:2612011201", ":61:2613011201")),
        Reason::DateInvalid
    );
    assert_eq!(
        reason(Format::Mt940, &at(":61:2612011201", ":61:26120")),
        Reason::MalformedMt940
    );
    assert_eq!(
        refusal(Format::Mt940, &at(":60F:C261201VND", ":60F:C261201USD")),
        (Reason::WrongCurrency, Some(4), None)
    );
    assert_eq!(
        reason(Format::Mt940, &at(":62F:C261201VND", ":62F:C261201EUR")),
        Reason::WrongCurrency
    );
    assert_eq!(
        reason(
            Format::Mt940,
            &at(":62F:C261201VND1430000,", ":62F:C261201VND1430001,")
        ),
        Reason::BalanceMismatch
    );
    assert_eq!(
        reason(Format::Mt940, &at(":62F:C261201VND1430000,\r\n", "")),
        Reason::MalformedMt940
    );
    assert_eq!(
        reason(Format::Mt940, &mt[..mt.find(":61:").unwrap()]),
        Reason::MalformedMt940
    );
    assert_eq!(
        reason(Format::Mt940, &format!("{mt}{mt}")),
        Reason::MultipleStatements
    );
    assert_eq!(
        reason(Format::Mt940, &at(":28C:", ":99X:")),
        Reason::MalformedMt940
    );
    assert_eq!(
        reason(Format::Mt940, &at(":20:", "hello\r\n:20:")),
        Reason::NotAStatement
    );
    assert_eq!(
        reason(Format::Mt940, &at(":20:PMSTMT-970436-20\r\n", "")),
        Reason::NotAStatement
    );
    assert_eq!(
        reason(Format::Mt940, "not a statement"),
        Reason::NotAStatement
    );
}

#[test]
fn mt940_in_a_swift_envelope_with_lf_reads_like_the_original() {
    let mt = written(Format::Mt940);
    let expected = read(Format::Mt940, mt.as_bytes(), "VND").unwrap();
    assert_eq!(
        read(Format::Mt940, mt.replace("-\r\n", "").as_bytes(), "VND").unwrap(),
        expected,
        "the end mark may be missing"
    );
    let wrapped = format!(
        "{{1:F01BFTVVNVXAXXX0000000000}}{{2:O9401200261201BFTVVNVXAXXX00000000002612011200N}}{{4:\r\n{}}}{{5:{{CHK:0123456789AB}}}}\r\n",
        mt.trim_end_matches("-\r\n").to_string() + "-"
    );
    assert_eq!(
        read(Format::Mt940, wrapped.as_bytes(), "VND").unwrap(),
        expected
    );
    assert_eq!(
        read(Format::Mt940, mt.replace("\r\n", "\n").as_bytes(), "VND").unwrap(),
        expected
    );
    let reversal = mt.replacen("C180000,NTRF", "RD180000,NTRF", 1);
    assert_eq!(
        read(Format::Mt940, reversal.as_bytes(), "VND").unwrap().1[0].direction,
        Direction::Credit
    );
}

#[test]
fn writers_refuse_what_they_cannot_write() {
    let s = sample();
    for format in FORMATS {
        let mut h = s.header.clone();
        h.credit_count += 1;
        let e = write(
            format,
            &Statement {
                header: h,
                entries: s.entries.clone(),
            },
        )
        .unwrap_err();
        assert_eq!(
            e.reason,
            Reason::SumsMismatch,
            "{format:?}: counts checked at finish"
        );
        for (mutate, want) in [
            (
                (|h: &mut paymesh_formats::StatementHeader| h.account.servicer_bin = "97043".into())
                    as fn(&mut _),
                Reason::InvalidInput,
            ),
            (|h| h.account.currency = "XAU".into(), Reason::InvalidInput),
            (|h| h.message_id = "x".repeat(36), Reason::InvalidInput),
            (|h| h.statement_id = String::new(), Reason::InvalidInput),
            (
                |h| h.created = "2026-12-01 16:00".into(),
                Reason::InvalidInput,
            ),
            (|h| h.account.number = " 123".into(), Reason::InvalidInput),
            (|h| h.business_date.day = 32, Reason::DateInvalid),
        ] {
            let mut h = s.header.clone();
            mutate(&mut h);
            assert_eq!(
                write(
                    format,
                    &Statement {
                        header: h,
                        entries: vec![]
                    }
                )
                .unwrap_err()
                .reason,
                want,
                "{format:?}"
            );
        }
        let mut unbalanced = s.clone();
        unbalanced.header.closing_balance += 1;
        let balanced_formats = matches!(format, Format::Camt053 | Format::Mt940);
        assert_eq!(
            write(format, &unbalanced).err().map(|e| e.reason),
            balanced_formats.then_some(Reason::BalanceMismatch),
            "{format:?}"
        );
        for (change, want) in [
            (
                (|e: &mut paymesh_formats::Entry| e.amount = 0) as fn(&mut _),
                Reason::AmountInvalid,
            ),
            (|e| e.details[0].amount += 1, Reason::SumsMismatch),
            (|e| e.details.truncate(1), Reason::InvalidInput),
            (
                |e| {
                    e.value_date = paymesh_formats::Day {
                        year: 2026,
                        month: 2,
                        day: 29,
                    }
                },
                Reason::DateInvalid,
            ),
        ] {
            let mut bad = s.clone();
            change(&mut bad.entries[1]);
            let mut w = AnyWriter::new(format, Vec::new(), &bad.header).unwrap();
            assert_eq!(
                w.write_entry(&bad.entries[1]).unwrap_err().reason,
                want,
                "{format:?}"
            );
        }
    }
    let mut far = sample();
    far.entries[0].value_date = day(2027, 12, 1);
    let mut w = AnyWriter::new(Format::Mt940, Vec::new(), &far.header).unwrap();
    assert_eq!(
        w.write_entry(&far.entries[0]).unwrap_err().reason,
        Reason::DateInvalid
    );
    let huge = vec![entry(1_000_000_000_000_000, Direction::Credit, "R", "")];
    let s = Statement {
        header: header_for("VND", 0, &huge),
        entries: huge,
    };
    assert_eq!(
        write(Format::Mt940, &s).unwrap_err().reason,
        Reason::AmountInvalid
    );
    assert!(write(Format::Camt053, &s).is_ok());
}
