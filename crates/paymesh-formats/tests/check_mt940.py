#!/usr/bin/env python3
"""Checks an MT940 file written by paymesh-formats with an independent parser.

Usage: check_mt940.py STATEMENT.mt940 EXPECTED.json

Parses the file with the `mt-940` package (`pip install mt-940`) and compares what it reads
with EXPECTED.json, written by the Rust test `mt940_files_are_read_by_the_python_mt940_package`:

    {"transaction_reference": ":20: value", "account": ":25: value", "currency": "VND",
     "opening": {"amount": "-1000000", "date": "2026-12-01"}, "closing": {...},
     "entries": [{"amount": "-50000" (negative for a debit), "status": "C" or "D",
                  "value_date": "...", "entry_date": "...", "customer_reference": "<=16",
                  "bank_reference": "<=16", "details_bank_reference": "full",
                  "end_to_end_id": "full", "description": "SWIFT text"}]}

Exits 0 when everything matches, 1 with one line per difference otherwise, 2 on bad usage.
"""

import json
import sys
from decimal import Decimal

import mt940


def check_statement(path, expected):
    problems = []

    def check(what, got, want):
        if got != want:
            problems.append(f"{what}: read {got!r}, expected {want!r}")

    statement = mt940.parse(path)
    data = statement.data
    check(":20:", data.get("transaction_reference"), expected["transaction_reference"])
    check(":25:", data.get("account_identification"), expected["account"])
    for key, field in (("opening", "final_opening_balance"), ("closing", "final_closing_balance")):
        balance = data.get(field)
        if balance is None:
            problems.append(f"{field}: missing")
            continue
        check(f"{field} amount", balance.amount.amount, Decimal(expected[key]["amount"]))
        check(f"{field} currency", balance.amount.currency, expected["currency"])
        check(f"{field} date", balance.date.isoformat(), expected[key]["date"])

    check("number of :61: entries", len(statement.transactions), len(expected["entries"]))
    for i, (transaction, want) in enumerate(zip(statement.transactions, expected["entries"]), 1):
        t = transaction.data
        check(f"entry {i} amount", t["amount"].amount, Decimal(want["amount"]))
        check(f"entry {i} currency", t["amount"].currency, expected["currency"])
        check(f"entry {i} mark", t["status"], want["status"])
        check(f"entry {i} value date", t["date"].isoformat(), want["value_date"])
        entry_date = t.get("entry_date")
        check(f"entry {i} entry date", entry_date and entry_date.isoformat(), want["entry_date"])
        check(f"entry {i} type", t.get("id"), "NTRF")
        check(f"entry {i} customer reference", t.get("customer_reference"), want["customer_reference"])
        check(f"entry {i} bank reference", t.get("bank_reference") or "", want["bank_reference"])
        lines = (t.get("transaction_details") or "").split("\n")
        if len(lines) > 6 or any(len(line) > 65 for line in lines):
            problems.append(f"entry {i} :86: exceeds 6 lines of 65 characters: {lines!r}")
        check(f"entry {i} :86: /BREF/", lines[0], "/BREF/" + want["details_bank_reference"])
        check(f"entry {i} :86: /EREF/", lines[1] if len(lines) > 1 else None, "/EREF/" + want["end_to_end_id"])
        check(f"entry {i} :86: description", "".join(lines[2:]), want["description"])
    return problems


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as f:
        expected = json.load(f)
    problems = check_statement(argv[1], expected)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{argv[1]}: mt-940 {mt940.__version__} reads {len(expected['entries'])} entries as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
