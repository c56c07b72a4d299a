"""paymesh.payment.v1 as a Python grpcio client sees it: real `paymesh serve` processes of the
ledger, the merchant service and the payment service. A vendor is approved, asks for an amount,
a bank notifies the credit with a realistic description, and the vendor's stream reports it."""

import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status
from google.rpc import error_details_pb2

from test_merchant_surface import _call, _vendor


def _reasons(error):
    status = rpc_status.from_call(error)
    out = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.append(info.reason)
    return out


@pytest.fixture(scope="module")
def vendor(payment, merchant_stubs):
    addrs, mint = payment
    mpb, mgrpc = merchant_stubs
    merchants = mgrpc.MerchantServiceStub(grpc.insecure_channel(addrs["merchant"]))
    operator = mint("operator:pytest")
    m = merchants.OnboardMerchant(
        mpb.OnboardMerchantRequest(kind=mpb.MERCHANT_KIND_VENDOR, application=_vendor(mpb)),
        metadata=_call(operator, str(uuid.uuid4())),
    )
    return merchants.ApproveMerchant(
        mpb.ApproveMerchantRequest(merchant_id=m.id, reason="checked", etag=m.etag),
        metadata=_call(operator, str(uuid.uuid4())),
    )


def _money(stubs, amount):
    _, _, common_pb2 = stubs
    return common_pb2.Money(amount=str(amount), currency_code="VND")


def test_a_vendor_is_paid_and_told(payment, payment_stubs, stubs, vendor):
    addrs, mint = payment
    pb, pgrpc = payment_stubs
    client = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"]))
    as_vendor = mint(f"merchant:{vendor.id}")
    bank = mint(f"bank:{vendor.collection_bank_bin}")

    stream = client.WatchPayments(
        pb.WatchPaymentsRequest(merchant_id=vendor.id), metadata=_call(as_vendor), timeout=30
    )
    intent = client.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(merchant_id=vendor.id, amount=_money(stubs, 150000), order_reference="CHE-3"),
        metadata=_call(as_vendor, str(uuid.uuid4())),
    ).intent
    assert intent.status == pb.INTENT_STATUS_ACTIVE
    assert intent.reference.startswith("PM") and len(intent.reference) == 13
    assert "54061500005802VN" in intent.qr_payload  # amount 150000, then the country

    value_time = timestamp_pb2.Timestamp()
    value_time.GetCurrentTime()
    request = pb.NotifyCreditRequest(
        bank_bin=vendor.collection_bank_bin,
        bank_transaction_id="FT24335999",
        account_number=vendor.virtual_account_number,
        amount=_money(stubs, 150000),
        description=f"IBFT {intent.reference.lower()} CT tu 0071000123456 LE VAN BINH",
        value_time=value_time,
    )
    answer = client.NotifyCredit(request, metadata=_call(bank))
    assert answer.credit.outcome == pb.CREDIT_OUTCOME_PAID
    assert not answer.duplicate
    again = client.NotifyCredit(request, metadata=_call(bank))
    assert again.duplicate and again.credit == answer.credit

    event = next(iter(stream)).event
    assert event.kind == pb.EVENT_KIND_PAYMENT_RECEIVED
    assert event.payment.id == answer.credit.payment_id
    assert event.payment.amount.amount == "150000"
    assert event.intent.status == pb.INTENT_STATUS_PAID
    stream.cancel()

    listed = client.ListPayments(pb.ListPaymentsRequest(), metadata=_call(as_vendor))
    assert [p.bank_transaction_id for p in listed.payments] == ["FT24335999"]


def test_refusals_carry_their_reasons(payment, payment_stubs, stubs, vendor):
    addrs, mint = payment
    pb, pgrpc = payment_stubs
    client = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"]))
    with pytest.raises(grpc.RpcError) as e:
        client.NotifyCredit(
            pb.NotifyCreditRequest(bank_bin="970436", bank_transaction_id="X1"),
            metadata=_call(mint(f"merchant:{vendor.id}")),
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        client.CreatePaymentIntent(
            pb.CreatePaymentIntentRequest(merchant_id=vendor.id, amount=_money(stubs, "1000.5")),
            metadata=_call(mint(f"merchant:{vendor.id}"), str(uuid.uuid4())),
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    intent = client.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(merchant_id=vendor.id, amount=_money(stubs, 5000)),
        metadata=_call(mint(f"merchant:{vendor.id}"), str(uuid.uuid4())),
    ).intent
    key = str(uuid.uuid4())
    client.CancelPaymentIntent(
        pb.CancelPaymentIntentRequest(intent_id=intent.id), metadata=_call(mint(f"merchant:{vendor.id}"), key)
    )
    with pytest.raises(grpc.RpcError) as e:
        client.CancelPaymentIntent(
            pb.CancelPaymentIntentRequest(intent_id=intent.id),
            metadata=_call(mint(f"merchant:{vendor.id}"), str(uuid.uuid4())),
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _reasons(e.value) == ["INVALID_STATUS_TRANSITION"]
