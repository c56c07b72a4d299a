"""paymesh.billing.v1 as a Python grpcio client sees it: real `paymesh serve` processes of the
ledger, the merchant, billing and payment services. A water company is approved and posts its
bills (a client stream, and the CSV its system exports); a bank app looks a customer up and
pays; a second app paying the same bill is refused; a paper bill's QR, decoded by zbarimg, is
paid by bank transfer; the collection report parses with Python's csv module to the same sums."""

import csv
import datetime
import io
import subprocess
import tempfile
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2

from test_merchant_surface import _call, _tax_code
from test_payment_surface import _reasons


def _money(stubs, amount):
    _, _, common_pb2 = stubs
    return common_pb2.Money(amount=str(amount), currency_code="VND")


def _tlv(text):
    """EMVCo tag-length-value fields of a QR payload (or of a template's value)."""
    fields, i = {}, 0
    while i < len(text):
        tag, length = text[i : i + 2], int(text[i + 2 : i + 4])
        fields[tag] = text[i + 4 : i + 4 + length]
        i += 4 + length
    return fields


def _today():
    # Bills' dates are the biller's calendar: Asia/Ho_Chi_Minh, UTC+7 all year.
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=7)).date()


@pytest.fixture(scope="module")
def biller(billing, merchant_stubs, billing_stubs):
    addrs, mint = billing
    mpb, mgrpc = merchant_stubs
    bpb, bgrpc = billing_stubs
    merchants = mgrpc.MerchantServiceStub(grpc.insecure_channel(addrs["merchant"]))
    operator = mint("operator:pytest")
    m = merchants.OnboardMerchant(
        mpb.OnboardMerchantRequest(
            kind=mpb.MERCHANT_KIND_BILLER,
            application=mpb.MerchantApplication(
                business_name="Công ty TNHH MTV Cấp nước Huế",
                tax_code=_tax_code(),
                phone="0912 000 111",
                address="103 Bùi Thị Xuân, TP. Huế",
                mcc="4900",
                biller_category=mpb.BILLER_CATEGORY_WATER,
                settlement_bank_bin="970415",
                settlement_account_number="101010654321",
            ),
        ),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    b = merchants.ApproveMerchant(
        mpb.ApproveMerchantRequest(merchant_id=m.id, reason="contract signed", etag=m.etag),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    client = bgrpc.BillingServiceStub(grpc.insecure_channel(addrs["billing"]))
    client.SetBillerPolicy(
        bpb.SetBillerPolicyRequest(
            policy=bpb.BillerPolicy(
                biller_id=b.id, customer_code_pattern="HUE[0-9]{6}", amount_rule=bpb.AMOUNT_RULE_EXACT
            )
        ),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    return b


def _bill(bpb, code, number, amount):
    due = _today() + datetime.timedelta(days=10)
    return bpb.BillInput(
        customer_code=code,
        bill_number=number,
        period=due.strftime("%Y-%m"),
        amount_due=str(amount),
        issue_date=str(due - datetime.timedelta(days=10)),
        due_date=str(due),
        customer_name="Hoàng Thị Hoa",
        description="Tiền nước",
    )


def test_bills_load_are_paid_once_and_reported(billing, billing_stubs, payment_stubs, stubs, biller):
    addrs, mint = billing
    bpb, bgrpc = billing_stubs
    client = bgrpc.BillingServiceStub(grpc.insecure_channel(addrs["billing"]))
    as_biller = mint(f"biller:{biller.id}")

    # A client stream of two messages; one bill breaks the pattern.
    def messages():
        yield bpb.UpsertBillsRequest(biller_id=biller.id, bills=[_bill(bpb, "HUE000001", "H-1", 120000)])
        yield bpb.UpsertBillsRequest(bills=[_bill(bpb, "HUE000002", "H-2", 80000), _bill(bpb, "X1", "H-3", 5000)])

    key = str(uuid.uuid4())
    loaded = client.UpsertBills(messages(), metadata=_call(as_biller, key))
    assert (loaded.loaded, loaded.rejected_count) == (2, 1)
    assert loaded.rejected[0].line == 2 and loaded.rejected[0].bill_number == "H-3"
    assert "customer_code" in loaded.rejected[0].reason
    assert client.UpsertBills(messages(), metadata=_call(as_biller, key)) == loaded

    # The CSV, with a BOM, CRLF and a quoted name with a comma.
    due = _today() + datetime.timedelta(days=10)
    text = (
        "\ufeffcustomer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description\r\n"
        f'HUE000003,H-4,{due:%Y-%m},64000,{due - datetime.timedelta(days=10)},{due},"Phan, Văn Dũng",Tiền nước\r\n'
        f"HUE000003,H-5,{due:%Y-%m},64000.5,{due - datetime.timedelta(days=10)},{due},Phan Văn Dũng,\r\n"
    ).encode()
    uploaded = client.UploadBillsCsv(
        iter([bpb.UploadBillsCsvRequest(biller_id=biller.id, chunk=text[:40]), bpb.UploadBillsCsvRequest(chunk=text[40:])]),
        metadata=_call(as_biller, str(uuid.uuid4())),
    )
    assert (uploaded.loaded, uploaded.rejected_count) == (1, 1)
    assert uploaded.rejected[0].line == 3

    # A bank app looks up and pays; another app paying the same bill is refused.
    app = mint("channel:hue-bank-app")
    found = client.LookupBills(bpb.LookupBillsRequest(biller_id=biller.id, customer_code="hue000001"), metadata=_call(app))
    assert found.category == "WATER"
    assert [b.customer_name_masked for b in found.bills] == ["HOANG T** H**"]
    assert found.bills[0].amount_due_now.amount == "120000"
    paid = client.PayBill(
        bpb.PayBillRequest(lookup_reference=found.lookup_reference, channel_reference="HUE-APP-1"),
        metadata=_call(app, str(uuid.uuid4())),
    )
    assert paid.total.amount == "120000"
    assert paid.payments[0].bill_status == bpb.BILL_STATUS_PAID
    other = mint("channel:post-office")
    again = client.LookupBills(bpb.LookupBillsRequest(biller_id=biller.id, customer_code="HUE000001"), metadata=_call(other))
    assert len(again.bills) == 0
    with pytest.raises(grpc.RpcError) as refused:
        client.PayBill(
            bpb.PayBillRequest(
                lookup_reference=again.lookup_reference,
                bills=[bpb.BillAmount(bill_number="H-1")],
                channel_reference="VNPOST-77",
            ),
            metadata=_call(other, str(uuid.uuid4())),
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _reasons(refused.value) == ["BILL_PAID"]
    # A lookup reference is the looking channel's own.
    with pytest.raises(grpc.RpcError) as stolen:
        client.PayBill(
            bpb.PayBillRequest(lookup_reference=found.lookup_reference, channel_reference="X"),
            metadata=_call(other, str(uuid.uuid4())),
        )
    assert stolen.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # The paper bill's QR, read by zbarimg, paid by bank transfer quoting its purpose.
    qr = client.GetBillQr(bpb.GetBillQrRequest(biller_id=biller.id, bill_number="H-2", render_png=True), metadata=_call(as_biller))
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(qr.png)
        f.flush()
        decoded = subprocess.run(["zbarimg", "--raw", "-q", f.name], check=True, capture_output=True, text=True).stdout.strip()
    assert decoded == qr.qr_payload
    top = _tlv(qr.qr_payload)
    additional = _tlv(top["62"])
    assert (additional["01"], additional["06"]) == ("H-2", "HUE000002")
    assert top["54"] == "80000"  # EXACT: the amount is printed
    purpose = additional["08"]
    assert purpose.startswith("PB") and len(purpose) == 13, qr.qr_payload
    pb, pgrpc = payment_stubs
    bank = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"]))
    value_time = timestamp_pb2.Timestamp()
    value_time.GetCurrentTime()
    credit = bank.NotifyCredit(
        pb.NotifyCreditRequest(
            bank_bin=biller.collection_bank_bin,
            bank_transaction_id="FT-HUE-0001",
            account_number=biller.virtual_account_number,
            amount=_money(stubs, 80000),
            description=f"MBVCB.99.{purpose}.CT tu 0123 HOANG THI HOA",
            value_time=value_time,
        ),
        metadata=_call(mint(f"bank:{biller.collection_bank_bin}")),
    ).credit
    assert credit.outcome == pb.CREDIT_OUTCOME_BILL
    bill = client.GetBill(bpb.GetBillRequest(biller_id=biller.id, bill_number="H-2"), metadata=_call(as_biller)).bill
    assert bill.status == bpb.BILL_STATUS_PAID

    report = client.GetCollectionReport(
        bpb.GetCollectionReportRequest(biller_id=biller.id, date=str(_today())), metadata=_call(as_biller)
    )
    rows = list(csv.DictReader(io.StringIO(report.csv)))
    body, total = rows[:-1], rows[-1]
    assert total["category"] == "TOTAL"
    assert sum(int(r["amount"]) for r in body) == int(total["amount"]) == 200000
    assert sum(int(r["count"]) for r in body) == int(report.count) == 2
    assert {r["payer"] for r in body} == {"channel:hue-bank-app", f"bank:{biller.collection_bank_bin}"}


def test_a_broken_or_foreign_call_is_refused(billing, billing_stubs, biller):
    addrs, mint = billing
    bpb, bgrpc = billing_stubs
    client = bgrpc.BillingServiceStub(grpc.insecure_channel(addrs["billing"]))
    # A stream without a key, and a channel trying to load bills.
    with pytest.raises(grpc.RpcError) as keyless:
        client.UpsertBills(iter([bpb.UpsertBillsRequest(biller_id=biller.id)]), metadata=_call(mint(f"biller:{biller.id}")))
    assert keyless.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as channel:
        client.UpsertBills(
            iter([bpb.UpsertBillsRequest(biller_id=biller.id)]),
            metadata=_call(mint("channel:app"), str(uuid.uuid4())),
        )
    assert channel.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Only the payment service hands over bank credits.
    with pytest.raises(grpc.RpcError) as bank:
        client.ApplyBankCredit(bpb.ApplyBankCreditRequest(), metadata=_call(mint("bank:970436")))
    assert bank.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A forged lookup reference.
    with pytest.raises(grpc.RpcError) as forged:
        client.PayBill(
            bpb.PayBillRequest(lookup_reference="L1.abc.def", channel_reference="X"),
            metadata=_call(mint("channel:app"), str(uuid.uuid4())),
        )
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
