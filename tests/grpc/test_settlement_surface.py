"""paymesh.settlement.v1 as a Python grpcio client sees it: the whole mesh, one `paymesh serve`
process per service. A vendor is paid through its bank; an operator closes the day; the bank
pulls its files — the camt.053 and camt.054 validated by xmllint against the ISO 20022
schemas, the MT940 read by the `mt-940` package, the CSV by Python's csv module — and imports
its own statement with a planted break; another bank sees none of it."""

import csv
import datetime
import hashlib
import io
import pathlib
import subprocess
import tempfile
import uuid

import grpc
import mt940
import pytest
from google.protobuf import timestamp_pb2

from test_merchant_surface import _call, _vendor
from test_payment_surface import _reasons

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "formats" / "iso20022"


def _money(stubs, amount):
    _, _, common_pb2 = stubs
    return common_pb2.Money(amount=str(amount), currency_code="VND")


def _open_day():
    """The business day open now: today in Hanoi until the 23:00 cut-off, then tomorrow."""
    hanoi = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=7)
    return hanoi.date() + datetime.timedelta(days=1 if hanoi.hour >= 23 else 0)


def _pull(client, spb, token, bank, day, fmt):
    stream = client.GetReconFile(
        spb.GetReconFileRequest(bank_bin=bank, business_date=day, format=fmt),
        metadata=_call(token),
        timeout=30,
    )
    meta, data = None, b""
    for message in stream:
        if message.HasField("file"):
            meta = message.file
        data += message.chunk
    assert meta is not None, "the first message carries the file"
    assert hashlib.sha256(data).hexdigest() == meta.sha256
    assert len(data) == meta.size_bytes
    return meta, data


def _xmllint(data, xsd):
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            ["xmllint", "--noout", "--schema", str(SCHEMAS / xsd), f.name], capture_output=True, text=True
        )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def paid_day(settlement, merchant_stubs, payment_stubs, settlement_stubs, stubs):
    """A vendor paid twice through bank 970436, then the day closed early by an operator."""
    addrs, mint = settlement
    mpb, mgrpc = merchant_stubs
    ppb, pgrpc = payment_stubs
    spb, sgrpc = settlement_stubs
    merchants = mgrpc.MerchantServiceStub(grpc.insecure_channel(addrs["merchant"]))
    operator = mint("operator:pytest")
    m = merchants.OnboardMerchant(
        mpb.OnboardMerchantRequest(kind=mpb.MERCHANT_KIND_VENDOR, application=_vendor(mpb)),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    vendor = merchants.ApproveMerchant(
        mpb.ApproveMerchantRequest(merchant_id=m.id, reason="checked", etag=m.etag),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    payments = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"]))
    bin_ = vendor.collection_bank_bin
    bank = mint(f"bank:{bin_}")
    txns = []
    for n, amount in enumerate([120000, 45000]):
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        txn = f"FT{uuid.uuid4().hex[:10].upper()}{n}"
        payments.NotifyCredit(
            ppb.NotifyCreditRequest(
                bank_bin=bin_,
                bank_transaction_id=txn,
                account_number=vendor.virtual_account_number,
                amount=_money(stubs, amount),
                description=f"CT tu 0071000123456 TRAN THI HOA chuyen tien {n}",
                value_time=now,
            ),
            metadata=_call(bank),
        )
        txns.append((txn, amount))
    client = sgrpc.SettlementServiceStub(grpc.insecure_channel(addrs["settlement"]))
    day = _open_day().isoformat()
    cutoff = timestamp_pb2.Timestamp()
    cutoff.GetCurrentTime()
    window = client.CloseWindow(
        spb.CloseWindowRequest(business_date=day, cutoff_time=cutoff), metadata=_call(operator)
    ).window
    return vendor, txns, window, day


def test_the_day_is_closed_and_paid_out(settlement, settlement_stubs, paid_day):
    addrs, mint = settlement
    spb, sgrpc = settlement_stubs
    vendor, _, window, day = paid_day
    assert window.status == spb.WINDOW_STATUS_SETTLED, window
    assert window.gross.amount == "165000"
    client = sgrpc.SettlementServiceStub(grpc.insecure_channel(addrs["settlement"]))
    payouts = client.ListPayouts(
        spb.ListPayoutsRequest(business_date=day), metadata=_call(mint("operator:pytest"))
    ).payouts
    (p,) = [p for p in payouts if p.merchant_id == vendor.id]
    assert p.status == spb.PAYOUT_STATUS_POSTED
    assert int(p.payout.amount) == int(p.gross.amount) - int(p.fees.amount) == int(p.net)
    assert p.account_number_masked.endswith("3456") and "1010101" not in p.account_number_masked
    # Closing again answers the same window; a merchant may not close one.
    again = client.CloseWindow(spb.CloseWindowRequest(business_date=day), metadata=_call(mint("operator:pytest")))
    assert again.window.status == spb.WINDOW_STATUS_SETTLED
    with pytest.raises(grpc.RpcError) as e:
        client.CloseWindow(spb.CloseWindowRequest(business_date=day), metadata=_call(mint(f"merchant:{vendor.id}")))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_bank_pulls_files_independent_parsers_read(settlement, settlement_stubs, paid_day):
    addrs, mint = settlement
    spb, sgrpc = settlement_stubs
    vendor, txns, _, day = paid_day
    bin_ = vendor.collection_bank_bin
    client = sgrpc.SettlementServiceStub(grpc.insecure_channel(addrs["settlement"]))
    bank = mint(f"bank:{bin_}")
    files = client.ListReconFiles(spb.ListReconFilesRequest(), metadata=_call(bank)).files
    assert {f.format for f in files if f.business_date == day} >= {
        spb.FILE_FORMAT_CAMT053,
        spb.FILE_FORMAT_CAMT054,
        spb.FILE_FORMAT_MT940,
        spb.FILE_FORMAT_CSV,
    }
    _, camt053 = _pull(client, spb, bank, bin_, day, spb.FILE_FORMAT_CAMT053)
    _xmllint(camt053, "camt.053.001.08.xsd")
    assert b'<Amt Ccy="VND">120000</Amt>' in camt053
    _, camt054 = _pull(client, spb, bank, bin_, day, spb.FILE_FORMAT_CAMT054)
    _xmllint(camt054, "camt.054.001.08.xsd")
    _, sta = _pull(client, spb, bank, bin_, day, spb.FILE_FORMAT_MT940)
    statement = mt940.models.Transactions()
    statement.parse(sta.decode("utf-8"))
    amounts = sorted(int(t.data["amount"].amount) for t in statement)
    assert amounts == sorted(a for _, a in txns)
    closing = int(statement.data["final_closing_balance"].amount.amount)
    opening = int(statement.data["final_opening_balance"].amount.amount)
    assert closing - opening == sum(a for _, a in txns)
    _, text = _pull(client, spb, bank, bin_, day, spb.FILE_FORMAT_CSV)
    rows = list(csv.reader(io.StringIO(text.decode("utf-8"))))
    assert rows[0][:4] == ["booking_date", "value_date", "direction", "amount"]
    body, trailer = rows[1:-1], rows[-1]
    assert trailer[0] == "TRAILER" and int(trailer[1]) == len(body)
    assert int(trailer[2]) == sum(int(r[3]) for r in body if r[2] == "CRDT") == sum(a for _, a in txns)
    assert {r[5] for r in body} == {t for t, _ in txns}

    # Another bank: its listing is its own (empty), asking for this bank is refused, and this
    # bank's file is as good as absent.
    other = mint("bank:970415")
    with pytest.raises(grpc.RpcError) as e:
        client.ListReconFiles(spb.ListReconFilesRequest(bank_bin=bin_), metadata=_call(other))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        list(
            client.GetReconFile(
                spb.GetReconFileRequest(file_id=files[0].id), metadata=_call(other), timeout=30
            )
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_statement_with_a_break_is_matched_and_resolved(settlement, settlement_stubs, paid_day):
    addrs, mint = settlement
    spb, sgrpc = settlement_stubs
    vendor, txns, _, day = paid_day
    bin_ = vendor.collection_bank_bin
    client = sgrpc.SettlementServiceStub(grpc.insecure_channel(addrs["settlement"]))
    operator = mint("operator:pytest")
    (first, a1), (_, _) = txns
    rows = [
        "booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description",
        f"{day},{day},CRDT,{a1},VND,{first},,CT tu TRAN THI HOA",
        f"{day},{day},CRDT,99000,VND,FTUNKNOWN42,,\"CHUYEN TIEN, KHONG RO\"",
        f"TRAILER,2,{a1 + 99000},0",
    ]
    data = ("\n".join(rows) + "\n").encode("utf-8")

    def messages(dry_run):
        yield spb.ImportStatementRequest(
            header=spb.ImportHeader(bank_bin=bin_, dry_run=dry_run, file_name="stmt.csv")
        )
        for i in range(0, len(data), 64):
            yield spb.ImportStatementRequest(chunk=data[i : i + 64])

    run = client.ImportStatement(messages(False), metadata=_call(operator)).run
    assert (run.lines, run.matched, run.missing_in_ledger, run.missing_in_bank) == (2, 1, 1, 1)
    assert run.format == spb.FILE_FORMAT_CSV
    breaks = client.ListReconExceptions(
        spb.ListReconExceptionsRequest(run_id=run.id), metadata=_call(operator)
    ).exceptions
    assert sorted(e.kind for e in breaks) == sorted([spb.OUTCOME_MISSING_IN_LEDGER, spb.OUTCOME_MISSING_IN_BANK])
    done = client.ResolveReconException(
        spb.ResolveReconExceptionRequest(
            exception_id=breaks[0].id, resolution=spb.RESOLUTION_INVESTIGATED, note="bank's own error"
        ),
        metadata=_call(operator),
    ).exception
    assert done.status == spb.EXCEPTION_STATUS_RESOLVED and done.resolved_by == "operator:pytest"
    # A note is required; another bank may not import for this one.
    with pytest.raises(grpc.RpcError) as e:
        client.ResolveReconException(
            spb.ResolveReconExceptionRequest(exception_id=breaks[1].id, resolution=spb.RESOLUTION_INVESTIGATED),
            metadata=_call(operator),
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        client.ImportStatement(messages(True), metadata=_call(mint("bank:970415")))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An XML bomb is refused whole, with its reason.
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Document>&b;</Document>'

    def hostile():
        yield spb.ImportStatementRequest(header=spb.ImportHeader(bank_bin=bin_))
        yield spb.ImportStatementRequest(chunk=bomb)

    with pytest.raises(grpc.RpcError) as e:
        client.ImportStatement(hostile(), metadata=_call(operator))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DOCTYPE" in e.value.details() or "DOCTYPE" in " ".join(_reasons(e.value)), e.value.details()
