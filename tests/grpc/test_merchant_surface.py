"""paymesh.merchant.v1 as a Python grpcio client sees it: a real `paymesh serve merchant` that
opens accounts on a real `paymesh serve ledger`."""

import secrets
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status


def _call(token, key=None):
    metadata = [("authorization", f"Bearer {token}")]
    if key is not None:
        metadata.append(("idempotency-key", key))
    return tuple(metadata)


def _tax_code():
    # Digits 3-9 random, the check digit computed as the domain does (weights 31 … 3).
    weights = [31, 29, 23, 19, 17, 13, 7, 5, 3]
    while True:
        first_nine = "01" + "".join(secrets.choice("0123456789") for _ in range(7))
        r = sum(w * int(d) for w, d in zip(weights, first_nine)) % 11
        if r and first_nine[2:] != "0000000":
            return first_nine + str(10 - r)


def _vendor(pb):
    return pb.MerchantApplication(
        business_name="Hộ kinh doanh Lê Thị Mai",
        trading_name="Chè Mai",
        tax_code=_tax_code(),
        owner_citizen_id="046190001234",
        phone="0912 345 678",
        address="Ki-ốt 7, Chợ Đông Ba, Thừa Thiên Huế",
        market_name="Chợ Đông Ba",
        stall_number="K-7",
        mcc="5812",
        settlement_bank_bin="970415",
        settlement_account_number="101010123456",
    )


def _approved_vendor(addrs, mint, merchant_stubs):
    """A vendor onboarded and approved by an operator through the mesh at `addrs`."""
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


def _details(error):
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    reasons, fields = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            fields.extend(v.field for v in br.field_violations)
    return reasons, fields


def test_health_knows_the_merchant_service(merchant):
    addr, *_ = merchant
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(addr))
    r = stub.Check(health_pb2.HealthCheckRequest(service="paymesh.merchant.v1.MerchantService"), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_onboard_approve_and_static_qr(merchant, merchant_stubs):
    addr, operator, mint = merchant
    pb, pb_grpc = merchant_stubs
    stub = pb_grpc.MerchantServiceStub(grpc.insecure_channel(addr))
    request = pb.OnboardMerchantRequest(kind=pb.MERCHANT_KIND_VENDOR, application=_vendor(pb))
    key = str(uuid.uuid4())
    m = stub.OnboardMerchant(request, metadata=_call(operator, key), timeout=10)
    assert m.status == pb.MERCHANT_STATUS_PENDING_REVIEW
    assert m.owner_citizen_id_masked == "046*******34"
    assert m.phone_masked == "+8491****678"
    assert m.settlement_account_number_masked == "****3456"
    # The same key replays the same merchant.
    assert stub.OnboardMerchant(request, metadata=_call(operator, key), timeout=10) == m

    # Approval names the version reviewed; a stale etag is ABORTED with a stable reason.
    assert m.etag
    with pytest.raises(grpc.RpcError) as e:
        stub.ApproveMerchant(
            pb.ApproveMerchantRequest(merchant_id=m.id, reason="giấy tờ đầy đủ", etag=m.etag + "0"),
            metadata=_call(operator, str(uuid.uuid4())),
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert _details(e.value)[0] == ["ETAG_MISMATCH"]
    approved = stub.ApproveMerchant(
        pb.ApproveMerchantRequest(merchant_id=m.id, reason="giấy tờ đầy đủ", etag=m.etag),
        metadata=_call(operator, str(uuid.uuid4())),
        timeout=10,
    )
    assert approved.status == pb.MERCHANT_STATUS_ACTIVE
    assert approved.etag and approved.etag != m.etag
    assert len(approved.payable_account_id) == 16
    va = approved.virtual_account_number
    assert va.isdigit() and len(va) <= 19

    own = mint(f"merchant:{m.id}")
    qr = stub.GetStaticQr(pb.GetStaticQrRequest(merchant_id=m.id), metadata=_call(own), timeout=10)
    assert qr.payload.startswith("000201010211")
    assert f"0006{qr.collection_bank_bin}01{len(va):02d}{va}" in qr.payload
    assert qr.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" in qr.svg

    # Another merchant may not look.
    other = mint(f"merchant:{uuid.uuid4()}")
    with pytest.raises(grpc.RpcError) as e:
        stub.GetMerchant(pb.GetMerchantRequest(merchant_id=m.id), metadata=_call(other), timeout=5)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # An illegal transition has a stable reason.
    with pytest.raises(grpc.RpcError) as e:
        stub.ReinstateMerchant(
            pb.ReinstateMerchantRequest(merchant_id=m.id, reason="x"),
            metadata=_call(operator, str(uuid.uuid4())),
            timeout=5,
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _details(e.value)[0] == ["INVALID_STATUS_TRANSITION"]

    events = stub.ListMerchantAuditEvents(
        pb.ListMerchantAuditEventsRequest(merchant_id=m.id), metadata=_call(operator), timeout=5
    ).events
    assert [e.action for e in events] == [pb.AUDIT_ACTION_ONBOARD, pb.AUDIT_ACTION_APPROVE]
    assert {e.actor for e in events} == {"operator:pytest"}


def test_virtual_accounts_looked_up_many_at_once(merchant, merchant_stubs):
    addr, operator, mint = merchant
    pb, pb_grpc = merchant_stubs
    stub = pb_grpc.MerchantServiceStub(grpc.insecure_channel(addr))
    a = stub.OnboardMerchant(
        pb.OnboardMerchantRequest(kind=pb.MERCHANT_KIND_VENDOR, application=_vendor(pb)),
        metadata=_call(operator, str(uuid.uuid4())),
        timeout=10,
    )
    a = stub.ApproveMerchant(
        pb.ApproveMerchantRequest(merchant_id=a.id, reason="checked", etag=a.etag),
        metadata=_call(operator, str(uuid.uuid4())),
        timeout=10,
    )
    asked = ["0000000000000000001", a.virtual_account_number, "12ab", a.virtual_account_number]
    answer = stub.LookupVirtualAccounts(
        pb.LookupVirtualAccountsRequest(virtual_account_numbers=asked),
        metadata=_call(mint("service:payment")),
        timeout=10,
    )
    assert [h.virtual_account_number for h in answer.holders] == asked
    assert [h.HasField("merchant") for h in answer.holders] == [False, True, False, True]
    assert answer.holders[1].merchant.id == a.id
    assert answer.holders[1].merchant.settlement_account_number == ""
    # Not for another service, and at most 256 numbers.
    with pytest.raises(grpc.RpcError) as e:
        stub.LookupVirtualAccounts(
            pb.LookupVirtualAccountsRequest(virtual_account_numbers=asked),
            metadata=_call(mint("service:billing")),
            timeout=5,
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        stub.LookupVirtualAccounts(
            pb.LookupVirtualAccountsRequest(virtual_account_numbers=["1"] * 257),
            metadata=_call(operator),
            timeout=5,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(e.value)[1] == ["virtual_account_numbers"]


def test_bad_input_names_every_field(merchant, merchant_stubs):
    addr, operator, _ = merchant
    pb, pb_grpc = merchant_stubs
    stub = pb_grpc.MerchantServiceStub(grpc.insecure_channel(addr))
    app = _vendor(pb)
    app.tax_code = "0100109107"
    app.phone = "0241234567"
    app.biller_category = pb.BILLER_CATEGORY_WATER
    with pytest.raises(grpc.RpcError) as e:
        stub.OnboardMerchant(
            pb.OnboardMerchantRequest(kind=pb.MERCHANT_KIND_VENDOR, application=app),
            metadata=_call(operator, str(uuid.uuid4())),
            timeout=5,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reasons, fields = _details(e.value)
    assert reasons == ["INVALID_ARGUMENT"]
    assert fields == ["application.tax_code", "application.phone", "application.biller_category"]
    # Mutating RPCs need an idempotency key.
    with pytest.raises(grpc.RpcError) as e:
        stub.OnboardMerchant(
            pb.OnboardMerchantRequest(kind=pb.MERCHANT_KIND_VENDOR, application=_vendor(pb)),
            metadata=_call(operator),
            timeout=5,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(e.value)[1] == ["idempotency-key"]
