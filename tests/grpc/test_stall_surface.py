"""paymesh.stall.v1 as a Python grpcio client sees it: real `paymesh serve` processes of the
ledger, merchant, payment and stall services. Sign-in links for a vendor (by an operator or the
vendor herself, never by another), revoked with her sessions; sound boxes added, listed and
removed — and a payment reaching a box's topic, read by the broker's own `mosquitto_sub`."""

import json
import os
import queue
import subprocess
import threading
import time
import urllib.request
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2

from test_merchant_surface import _approved_vendor, _call
from test_payment_surface import _reasons


@pytest.fixture(scope="module")
def vendors(stall, merchant_stubs):
    addrs, mint = stall
    return _approved_vendor(addrs, mint, merchant_stubs), _approved_vendor(addrs, mint, merchant_stubs)


def test_sign_in_links_are_for_the_vendor_herself_or_an_operator(stall, stall_stubs, vendors):
    addrs, mint = stall
    pb, sgrpc = stall_stubs
    client = sgrpc.StallServiceStub(grpc.insecure_channel(addrs["stall"]))
    vendor, other = vendors
    by_operator = client.CreateSignInLink(
        pb.CreateSignInLinkRequest(merchant_id=vendor.id), metadata=_call(mint("operator:pytest"))
    )
    assert by_operator.url.startswith(f"http://{addrs['stall_page']}/signin?token=")
    assert by_operator.merchant_id == vendor.id
    assert by_operator.expire_time.seconds > time.time()
    own = client.CreateSignInLink(
        pb.CreateSignInLinkRequest(merchant_id=vendor.id), metadata=_call(mint(f"merchant:{vendor.id}"))
    )
    assert own.url != by_operator.url
    with pytest.raises(grpc.RpcError) as e:
        client.CreateSignInLink(
            pb.CreateSignInLinkRequest(merchant_id=vendor.id), metadata=_call(mint(f"merchant:{other.id}"))
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        client.CreateSignInLink(
            pb.CreateSignInLinkRequest(merchant_id=str(uuid.uuid4())), metadata=_call(mint("operator:pytest"))
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        client.CreateSignInLink(pb.CreateSignInLinkRequest(merchant_id="nope"), metadata=_call(mint("operator:pytest")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        client.CreateSignInLink(pb.CreateSignInLinkRequest(merchant_id=vendor.id))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The link's page loads; both unused links are revoked with her sessions.
    with urllib.request.urlopen(own.url, timeout=10) as r:
        assert r.status == 200
        assert "signin-form" in r.read().decode()
        assert r.headers["Referrer-Policy"] == "strict-origin"
    revoked = client.RevokeSessions(
        pb.RevokeSessionsRequest(merchant_id=vendor.id), metadata=_call(mint(f"merchant:{vendor.id}"))
    )
    assert revoked.links_revoked == 2
    assert revoked.sessions_revoked == 0


def test_sound_boxes_get_the_vendors_payments(stall, stall_stubs, payment_stubs, stubs, vendors):
    addrs, mint = stall
    pb, sgrpc = stall_stubs
    ppb, pgrpc = payment_stubs
    _, _, common_pb2 = stubs
    client = sgrpc.StallServiceStub(grpc.insecure_channel(addrs["stall"]))
    vendor, other = vendors
    as_vendor = _call(mint(f"merchant:{vendor.id}"))
    box = client.AddSoundBox(pb.AddSoundBoxRequest(merchant_id=vendor.id, terminal_id="quay-15"), metadata=as_vendor)
    assert box.sound_box.topic == f"paymesh/v1/soundbox/{vendor.id}/quay-15"
    again = client.AddSoundBox(pb.AddSoundBoxRequest(merchant_id=vendor.id, terminal_id="quay-15"), metadata=as_vendor)
    assert again.sound_box == box.sound_box
    with pytest.raises(grpc.RpcError) as e:
        client.AddSoundBox(pb.AddSoundBoxRequest(merchant_id=vendor.id, terminal_id="a/+"), metadata=as_vendor)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        client.ListSoundBoxes(pb.ListSoundBoxesRequest(merchant_id=vendor.id), metadata=_call(mint(f"merchant:{other.id}")))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = client.ListSoundBoxes(pb.ListSoundBoxesRequest(merchant_id=vendor.id), metadata=as_vendor)
    assert [b.terminal_id for b in listed.sound_boxes] == ["quay-15"]

    url = os.environ.get("PAYMESH_MQTT_URL", "")
    if url:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", host, "-p", port, "-q", "1", "-t", box.sound_box.topic, "-W", "60"],
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l.strip()) for l in sub.stdout], daemon=True).start()
        try:
            # Subscribed once a probe comes back; the publisher follows her within 100 ms.
            for _ in range(50):
                subprocess.run(
                    ["mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", box.sound_box.topic, "-m", "probe"],
                    check=True,
                )
                try:
                    if lines.get(timeout=0.3) == "probe":
                        break
                except queue.Empty:
                    pass
            else:
                pytest.fail("mosquitto_sub never received the probe")
            time.sleep(2.0)
            bank = _call(mint(f"bank:{vendor.collection_bank_bin}"))
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            paid = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"])).NotifyCredit(
                ppb.NotifyCreditRequest(
                    bank_bin=vendor.collection_bank_bin,
                    bank_transaction_id=f"FT{uuid.uuid4().hex[:12].upper()}",
                    account_number=vendor.virtual_account_number,
                    amount=common_pb2.Money(amount="124000", currency_code="VND"),
                    description="NGUYEN VAN A chuyen tien",
                    value_time=now,
                ),
                metadata=bank,
            )
            while True:
                line = lines.get(timeout=20)
                if line != "probe":
                    break
            message = json.loads(line)
            assert message["id"] == paid.credit.payment_id
            assert message["account"] == vendor.virtual_account_number
            assert message["amount"] == "124000"
            assert message["text"] == "Đã nhận một trăm hai mươi tư nghìn đồng"
        finally:
            sub.kill()
            sub.wait(timeout=10)
    elif os.environ.get("CI"):
        pytest.fail("PAYMESH_MQTT_URL must be set under CI (infra/stack.sh starts Mosquitto)")

    removed = client.RemoveSoundBox(pb.RemoveSoundBoxRequest(merchant_id=vendor.id, terminal_id="quay-15"), metadata=as_vendor)
    assert removed.sound_box.terminal_id == "quay-15"
    with pytest.raises(grpc.RpcError) as e:
        client.RemoveSoundBox(pb.RemoveSoundBoxRequest(merchant_id=vendor.id, terminal_id="quay-15"), metadata=as_vendor)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
