"""Requests that are not what the proto says are the caller's fault, on every service.

Raw bytes go over grpcio's generic unary call (no serializer), so nothing on the client side
second-guesses them; the answers are read as a grpcio client sees them.
"""

import secrets

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

GET_BALANCES = "/paymesh.ledger.v1.LedgerService/GetBalances"
LIST_TRANSFERS = "/paymesh.ledger.v1.LedgerService/ListTransfers"


def _auth(token):
    return (("authorization", f"Bearer {token}"),)


def _raw_call(addr, token, path, payload):
    channel = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", -1)])
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        call(payload, metadata=_auth(token), timeout=30)
    return e.value


def _reasons(error):
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status details: {error.code()} {error.details()}"
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append((info.reason, info.domain))
    return reasons


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def test_bytes_that_are_not_protobuf_are_invalid_argument(ledger):
    addr, token, *_ = ledger
    # A truncated varint, then a tag with wire type 7 (no such type).
    for payload in (b"\x08\xff\xff\xff", b"\x0f\x01\x02", secrets.token_bytes(64) + b"\xff"):
        error = _raw_call(addr, token, GET_BALANCES, payload)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload, error.code(), error.details())
        assert _reasons(error) == [("MALFORMED_REQUEST", "paymesh")]


def test_invalid_utf8_in_a_string_field_is_invalid_argument(ledger):
    addr, token, *_ = ledger
    # ListTransfersRequest: account_id (1, bytes) fine, page_token (5, string) not UTF-8.
    payload = _length_delimited(1, secrets.token_bytes(16)) + _length_delimited(5, b"ok\xff\xfe")
    error = _raw_call(addr, token, LIST_TRANSFERS, payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert _reasons(error) == [("MALFORMED_REQUEST", "paymesh")]


def test_a_message_over_the_size_limit_is_resource_exhausted(ledger):
    addr, token, *_ = ledger
    # server.message_bytes_max is 8 MiB by default: one account id field of 9 MiB.
    payload = _length_delimited(1, b"\x00" * (9 << 20))
    error = _raw_call(addr, token, GET_BALANCES, payload)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    assert _reasons(error) == [("MESSAGE_TOO_LARGE", "paymesh")]


def test_a_well_formed_raw_request_still_works(ledger):
    addr, token, *_ = ledger
    channel = grpc.insecure_channel(addr)
    call = channel.unary_unary(GET_BALANCES, request_serializer=None, response_deserializer=None)
    # One unknown account id: an answer (empty balances or NOT_FOUND), never a decode error.
    try:
        call(_length_delimited(1, secrets.token_bytes(16)), metadata=_auth(token), timeout=10)
    except grpc.RpcError as e:
        assert e.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), e.details()
