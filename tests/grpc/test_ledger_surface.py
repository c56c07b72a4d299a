"""paymesh.ledger.v1 as a Python grpcio client sees it."""

import secrets
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status


def _auth(token):
    return (("authorization", f"Bearer {token}"),)


def _id():
    return secrets.token_bytes(16)


def test_health_answers_without_a_token(ledger):
    addr, *_ = ledger
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(addr))
    for service in ("", "paymesh.ledger.v1.LedgerService"):
        r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(ledger):
    addr, *_ = ledger
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc.insecure_channel(addr))
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"paymesh.ledger.v1.LedgerService", "grpc.health.v1.Health"} <= names
    # A port lists what it serves, nothing more: no other paymesh service answers here.
    assert not any(n.startswith("paymesh.") and n != "paymesh.ledger.v1.LedgerService" for n in names), names


def test_calls_without_a_valid_token_are_unauthenticated(ledger, stubs):
    addr, *_ = ledger
    ledger_pb2, ledger_pb2_grpc, _ = stubs
    stub = ledger_pb2_grpc.LedgerServiceStub(grpc.insecure_channel(addr))
    for metadata in ((), _auth("not-a-jwt"), (("authorization", "Basic abc"),)):
        with pytest.raises(grpc.RpcError) as e:
            stub.GetBalances(ledger_pb2.GetBalancesRequest(account_ids=[_id()]), metadata=metadata, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_merchant_may_not_post_to_the_ledger(ledger, stubs):
    addr, _, merchant, _ = ledger
    ledger_pb2, ledger_pb2_grpc, _ = stubs
    stub = ledger_pb2_grpc.LedgerServiceStub(grpc.insecure_channel(addr))
    with pytest.raises(grpc.RpcError) as e:
        stub.GetBalances(ledger_pb2.GetBalancesRequest(account_ids=[_id()]), metadata=_auth(merchant), timeout=5)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_payment_with_fee_and_balances(ledger, stubs):
    addr, token, *_ = ledger
    ledger_pb2, ledger_pb2_grpc, common_pb2 = stubs
    stub = ledger_pb2_grpc.LedgerServiceStub(grpc.insecure_channel(addr))
    bank, vendor, fees = _id(), _id(), _id()
    accounts = [
        ledger_pb2.Account(id=bank, currency_code="VND", code=ledger_pb2.ACCOUNT_CODE_BANK_CLEARING, reference="bank"),
        ledger_pb2.Account(
            id=vendor,
            currency_code="VND",
            code=ledger_pb2.ACCOUNT_CODE_MERCHANT_PAYABLE,
            reference="Cô Lan, Chợ Đông Ba",
            flags=ledger_pb2.AccountFlags(debits_must_not_exceed_credits=True),
        ),
        ledger_pb2.Account(id=fees, currency_code="VND", code=ledger_pb2.ACCOUNT_CODE_FEE_REVENUE, reference="fees"),
    ]
    r = stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=_auth(token), timeout=5)
    assert list(r.results) == [ledger_pb2.CREATE_ACCOUNT_RESULT_OK] * 3
    vnd = lambda a: common_pb2.Money(amount=a, currency_code="VND")
    pay = ledger_pb2.Transfer(
        id=_id(), debit_account_id=bank, credit_account_id=vendor, amount=vnd("150000"),
        code=ledger_pb2.TRANSFER_CODE_QR_PAYMENT, reference="pay-1", flags=ledger_pb2.TransferFlags(linked=True),
    )
    fee = ledger_pb2.Transfer(
        id=_id(), debit_account_id=vendor, credit_account_id=fees, amount=vnd("1500"),
        code=ledger_pb2.TRANSFER_CODE_FEE, reference="pay-1",
    )
    r = stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[pay, fee]), metadata=_auth(token), timeout=5)
    assert list(r.results) == [ledger_pb2.CREATE_TRANSFER_RESULT_OK] * 2
    r = stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[pay, fee]), metadata=_auth(token), timeout=5)
    assert list(r.results) == [ledger_pb2.CREATE_TRANSFER_RESULT_EXISTS] * 2
    b = stub.GetBalances(ledger_pb2.GetBalancesRequest(account_ids=[vendor]), metadata=_auth(token), timeout=5)
    (acct,) = b.accounts
    assert acct.reference == "Cô Lan, Chợ Đông Ba"
    assert (acct.debits_posted.amount, acct.credits_posted.amount) == ("1500", "150000")
    assert acct.credits_posted.currency_code == "VND"
    listing = stub.ListTransfers(ledger_pb2.ListTransfersRequest(account_id=vendor, page_size=1), metadata=_auth(token), timeout=5)
    assert len(listing.transfers) == 1 and listing.next_page_token
    assert listing.transfers[0].create_time.seconds > 1_700_000_000


def test_bad_input_names_the_field_in_bad_request_details(ledger, stubs):
    addr, token, *_ = ledger
    ledger_pb2, ledger_pb2_grpc, common_pb2 = stubs
    stub = ledger_pb2_grpc.LedgerServiceStub(grpc.insecure_channel(addr))
    bad = ledger_pb2.Transfer(
        id=_id(), debit_account_id=_id(), credit_account_id=_id(),
        amount=common_pb2.Money(amount="50000.5", currency_code="VND"),
        code=ledger_pb2.TRANSFER_CODE_QR_PAYMENT,
    )
    with pytest.raises(grpc.RpcError) as e:
        stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[bad]), metadata=_auth(token), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(e.value)
    assert status is not None, "no google.rpc.Status details"
    infos, violations = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            violations.extend(v.field for v in br.field_violations)
    assert [(i.reason, i.domain) for i in infos] == [("INVALID_ARGUMENT", "paymesh")]
    assert violations == ["transfers[0].amount.amount"]


def test_metrics_count_requests_by_code(ledger):
    *_, metrics_addr = ledger
    text = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5).read().decode()
    assert "paymesh_grpc_requests_total" in text
    assert 'code="UNAUTHENTICATED"' in text
    assert "paymesh_grpc_request_duration_seconds_bucket" in text
