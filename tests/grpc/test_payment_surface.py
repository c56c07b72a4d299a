"""paymesh.payment.v1 as a Python grpcio client sees it: real `paymesh serve` processes of the
ledger, the merchant service and the payment service. A vendor is approved, asks for an amount,
a bank notifies the credit with a realistic description, and the vendor's stream reports it."""

import hashlib
import hmac
import http.client
import http.server
import json
import threading
import time
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status
from google.rpc import error_details_pb2

from test_merchant_surface import _approved_vendor, _call


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
    return _approved_vendor(addrs, mint, merchant_stubs)


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


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A merchant's webhook endpoint: answers 500 to the first delivery, 200 after."""

    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = 500 if not _Receiver.got else 200
        _Receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body, answer))
        self.send_response(answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _post(addr, path, body, headers):
    conn = http.client.HTTPConnection(*addr.split(":"), timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


def _sign(secret, ts, body):
    return "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def test_webhooks_both_ways_and_a_refund_checked_with_pythons_own_hmac(payment, payment_stubs, stubs, vendor):
    from conftest import BANK_WEBHOOK_SECRET

    addrs, mint = payment
    pb, pgrpc = payment_stubs
    client = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"]))
    as_vendor = mint(f"merchant:{vendor.id}")
    bank = mint(f"bank:{vendor.collection_bank_bin}")

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        endpoint = client.UpdateWebhookEndpoint(
            pb.UpdateWebhookEndpointRequest(
                merchant_id=vendor.id, url=f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
            ),
            metadata=_call(as_vendor, str(uuid.uuid4())),
        )
        secret = endpoint.signing_secret
        assert secret.startswith("whsec_")

        intent = client.CreatePaymentIntent(
            pb.CreatePaymentIntentRequest(merchant_id=vendor.id, amount=_money(stubs, 80000)),
            metadata=_call(as_vendor, str(uuid.uuid4())),
        ).intent
        # The bank notifies over its signed HTTP edge, signed here with Python's hmac.
        body = json.dumps(
            {
                "bank_transaction_id": "FT-PY-HTTP-1",
                "account_number": vendor.virtual_account_number,
                "amount": "80000",
                "description": f"MBVCB.3279481172.{intent.reference}.CT tu 0071000123456 TRAN THI CUC",
                "value_time": "2026-12-01T02:30:00Z",
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {"Paymesh-Timestamp": ts, "Paymesh-Signature": _sign(BANK_WEBHOOK_SECRET, ts, body)}
        path = f"/v1/banks/{vendor.collection_bank_bin}/credits"
        status, answer = _post(addrs["payment_webhook"], path, body, headers)
        assert status == 200 and answer["outcome"] == "PAID", answer
        status, answer = _post(addrs["payment_webhook"], path, body, headers)
        assert status == 409 and answer["reason"] == "REPLAY", answer
        forged = {**headers, "Paymesh-Signature": _sign("not-the-secret-000000", ts, body)}
        assert _post(addrs["payment_webhook"], path, body, forged)[0] == 401

        # The merchant's endpoint gets the payment, retried after its 500, signed with its secret.
        deadline = time.time() + 20
        while not any(a == 200 for _, _, a in _Receiver.got) and time.time() < deadline:
            time.sleep(0.05)
        delivered = [(h, b) for h, b, a in _Receiver.got if a == 200]
        assert delivered, _Receiver.got
        for h, b, _ in _Receiver.got:
            assert h["paymesh-signature"] == _sign(secret, h["paymesh-timestamp"], b)
        h, b = delivered[0]
        event = json.loads(b)
        assert event["id"] == h["paymesh-event-id"]
        assert event["kind"] == "PAYMENT_RECEIVED"
        assert event["payment"]["payment_id"] == answer_id(client, pb, as_vendor, "FT-PY-HTTP-1")
        assert len({json.loads(b)["id"] for _, b, _ in _Receiver.got}) == 1  # one event, retried
    finally:
        receiver.shutdown()

    # A partial refund, queued for the bank, which settles it.
    payment_id = answer_id(client, pb, as_vendor, "FT-PY-HTTP-1")
    refund = client.RefundPayment(
        pb.RefundPaymentRequest(payment_id=payment_id, amount=_money(stubs, 30000), reason="one bag short"),
        metadata=_call(as_vendor, str(uuid.uuid4())),
    ).refund
    assert refund.status == pb.REFUND_STATUS_PENDING and refund.amount.amount == "30000"
    queue = client.ListRefunds(pb.ListRefundsRequest(status=pb.REFUND_STATUS_PENDING), metadata=_call(bank))
    assert refund.id in [r.id for r in queue.refunds]
    done = client.SettleRefund(
        pb.SettleRefundRequest(refund_id=refund.id, status=pb.REFUND_STATUS_COMPLETED), metadata=_call(bank)
    ).refund
    assert done.status == pb.REFUND_STATUS_COMPLETED
    with pytest.raises(grpc.RpcError) as e:
        client.RefundPayment(
            pb.RefundPaymentRequest(payment_id=payment_id, amount=_money(stubs, 50001)),
            metadata=_call(as_vendor, str(uuid.uuid4())),
        )
    assert _reasons(e.value) == ["REFUND_EXCEEDS_PAYMENT"]


def answer_id(client, pb, token, bank_txn):
    """The payment id of a bank transaction, from the merchant's own listing."""
    listed = client.ListPayments(pb.ListPaymentsRequest(page_size=100), metadata=_call(token))
    return next(p.id for p in listed.payments if p.bank_transaction_id == bank_txn)
