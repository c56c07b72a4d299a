"""Fixtures for checking paymesh's gRPC surface with an independent client (Python grpcio).

A real `paymesh serve ledger` process is started on a fresh PostgreSQL database (from
PAYMESH_DATABASE_URL, which infra/test.sh exports) with freshly generated JWT keys.
Python stubs are generated from proto/ with grpc_tools (its bundled protoc).
"""

import os
import pathlib
import secrets
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _binary():
    path = os.environ.get("PAYMESH_BIN", str(ROOT / "target" / "debug" / "paymesh"))
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it with `cargo build -p paymesh` (infra/test.sh does)")
    return path


@pytest.fixture(scope="session")
def stubs():
    out = pathlib.Path(tempfile.mkdtemp(prefix="paymesh-stubs-"))
    from grpc_tools import protoc
    import importlib.resources

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = [str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")]
    code = protoc.main(
        ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    )
    assert code == 0, "protoc failed on proto/"
    for d in out.rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    sys.path.insert(0, str(out))
    from paymesh.ledger.v1 import ledger_pb2, ledger_pb2_grpc
    from paymesh.common.v1 import common_pb2

    return ledger_pb2, ledger_pb2_grpc, common_pb2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url(name):
    admin = os.environ.get("PAYMESH_DATABASE_URL")
    if not admin:
        pytest.fail("PAYMESH_DATABASE_URL is not set: run through infra/test.sh")
    subprocess.run(["psql", "-q", admin, "-c", f"CREATE DATABASE {name}"], check=True)
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def ledger():
    """(address, token for service:pytest, token for merchant:m1)"""
    binary = _binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix="paymesh-grpc-"))
    env = dict(os.environ)
    env.update(
        PAYMESH_DATABASE_URL=_database_url(f"grpc_surface_{secrets.token_hex(6)}"),
        PAYMESH_AUTH_PRIVATE_KEY_FILE=str(work / "private.pem"),
        PAYMESH_AUTH_PUBLIC_KEY_FILE=str(work / "public.pem"),
        PAYMESH_LEDGER_LISTEN=f"127.0.0.1:{_free_port()}",
        PAYMESH_TELEMETRY_METRICS_LISTEN=f"127.0.0.1:{_free_port()}",
        PAYMESH_TELEMETRY_LOG_LEVEL="warn",
    )
    subprocess.run([binary, "token", "keygen"], env=env, check=True)
    mint = lambda p: subprocess.run([binary, "token", "mint", p], env=env, check=True, capture_output=True, text=True).stdout.strip()
    proc = subprocess.Popen([binary, "serve", "ledger"], env=env)
    addr = env["PAYMESH_LEDGER_LISTEN"]
    try:
        channel = grpc.insecure_channel(addr)
        grpc.channel_ready_future(channel).result(timeout=30)
        yield addr, mint("service:pytest"), mint("merchant:m1"), env["PAYMESH_TELEMETRY_METRICS_LISTEN"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
