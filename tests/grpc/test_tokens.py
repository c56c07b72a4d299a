"""Tokens as an outside client makes them: the dev keys that `paymesh token keygen` writes are
read by Python's `cryptography` (PKCS#8 PEM), and a JWT signed here, with the header and claims
the services' README asks for, is accepted; one breaking a rule is refused."""

import base64
import json
import time

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(key_file, kid, sub, lifetime=300, iat=None, aud="paymesh"):
    key = load_pem_private_key(key_file.read_bytes(), password=None)
    now = int(time.time()) if iat is None else iat
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    claims = {"iss": "paymesh", "aud": aud, "sub": sub, "iat": now, "exp": now + lifetime}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def _list(addr, pb, pb_grpc, token):
    stub = pb_grpc.MerchantServiceStub(grpc.insecure_channel(addr))
    return stub.ListMerchants(
        pb.ListMerchantsRequest(page_size=1), metadata=(("authorization", f"Bearer {token}"),), timeout=10
    )


def _refused(addr, pb, pb_grpc, token):
    with pytest.raises(grpc.RpcError) as e:
        _list(addr, pb, pb_grpc, token)
    return e.value.code()


def test_the_dev_keys_are_standard_pem(merchant):
    _, _, mint = merchant
    for name in ("mesh", "operator"):
        load_pem_private_key((mint.keys / "private" / f"{name}.pem").read_bytes(), password=None)
        load_pem_public_key((mint.keys / "public" / f"{name}.pem").read_bytes())


def test_a_token_minted_outside_paymesh_is_accepted(merchant, merchant_stubs):
    addr, _, mint = merchant
    pb, pb_grpc = merchant_stubs
    token = _jwt(mint.keys / "private" / "operator.pem", "operator", "operator:python")
    _list(addr, pb, pb_grpc, token)


def test_tokens_breaking_the_rules_are_refused(merchant, merchant_stubs):
    addr, _, mint = merchant
    pb, pb_grpc = merchant_stubs
    operator_key = mint.keys / "private" / "operator.pem"
    mesh_key = mint.keys / "private" / "mesh.pem"
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    # The services' key may not sign an operator's token, even naming the operator key's id.
    assert _refused(addr, pb, pb_grpc, _jwt(mesh_key, "mesh", "operator:python")) == unauthenticated
    assert _refused(addr, pb, pb_grpc, _jwt(mesh_key, "operator", "operator:python")) == unauthenticated
    # An unknown key id, a bare `operator`, a lifetime over the maximum, an `iat` in the future.
    assert _refused(addr, pb, pb_grpc, _jwt(operator_key, "operator-2027", "operator:python")) == unauthenticated
    assert _refused(addr, pb, pb_grpc, _jwt(operator_key, "operator", "operator")) == unauthenticated
    assert _refused(addr, pb, pb_grpc, _jwt(operator_key, "operator", "operator:python", lifetime=86_400)) == unauthenticated
    future = int(time.time()) + 3_600
    assert _refused(addr, pb, pb_grpc, _jwt(operator_key, "operator", "operator:python", iat=future)) == unauthenticated
    assert _refused(addr, pb, pb_grpc, _jwt(operator_key, "operator", "operator:python", aud="elsewhere")) == unauthenticated
