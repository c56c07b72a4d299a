"""Fixtures for checking paymesh's gRPC surface with an independent client (Python grpcio).

A real `paymesh serve ledger` process is started on a fresh PostgreSQL database (from
PAYMESH_DATABASE_URL, which infra/test.sh exports) with freshly generated JWT keys.
Python stubs are generated from proto/ with grpc_tools (its bundled protoc).
"""

import os
import pathlib
import secrets
import shutil
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
    # Only our own packages become regular packages: a `google/__init__.py` here would shadow the
    # installed google.protobuf, and the installed google.api (googleapis-common-protos) is used.
    for d in (out / "paymesh").rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    (out / "paymesh" / "__init__.py").touch()
    sys.path.append(str(out))
    from paymesh.ledger.v1 import ledger_pb2, ledger_pb2_grpc
    from paymesh.common.v1 import common_pb2

    try:
        yield ledger_pb2, ledger_pb2_grpc, common_pb2
    finally:
        shutil.rmtree(out, ignore_errors=True)


_HANDED_OUT = set()


def _free_port():
    """A loopback port free now and never handed out before in this run.

    The port is released before a child binds it, so the kernel may offer it again to the next
    caller: two services of one mesh were once both told the same port, the second failed to bind,
    and the first answered for it (CI: health NOT_FOUND, UNIMPLEMENTED for every call).
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _wait_serving(proc, addr, service, timeout=30):
    """Wait until `proc` answers at `addr` that `service` is SERVING; fail at once if it exited.

    Asking for the service by name means that another process on the port does not pass.
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    name = f"paymesh.{service}.v1.{service.capitalize()}Service"
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(addr))
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"paymesh serve {service} exited with {proc.returncode} before serving at {addr}")
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = r.status
        except grpc.RpcError as e:
            last = e.code()
        time.sleep(0.1)
    pytest.fail(f"paymesh serve {service} at {addr} not serving {name} after {timeout} s (last: {last})")


def _database_url(name):
    admin = os.environ.get("PAYMESH_DATABASE_URL")
    if not admin:
        pytest.fail("PAYMESH_DATABASE_URL is not set: run through infra/test.sh")
    subprocess.run(["psql", "-q", admin, "-c", f"CREATE DATABASE {name}"], check=True)
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def ledger():
    """(address, token for service:demo (it may open accounts and post), token for merchant:m1)"""
    binary = _binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix="paymesh-grpc-"))
    env = dict(os.environ)
    env.update(
        PAYMESH_DATABASE_URL=_database_url(f"grpc_surface_{secrets.token_hex(6)}"),
        PAYMESH_AUTH_PRIVATE_KEY_FILE=str(work / "private" / "mesh.pem"),
        PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE=str(work / "private" / "operator.pem"),
        PAYMESH_AUTH_PUBLIC_KEYS_DIR=str(work / "public"),
        PAYMESH_LEDGER_LISTEN=f"127.0.0.1:{_free_port()}",
        PAYMESH_TELEMETRY_METRICS_LISTEN=f"127.0.0.1:{_free_port()}",
        PAYMESH_TELEMETRY_LOG_LEVEL="warn",
    )
    subprocess.run([binary, "token", "keygen"], env=env, check=True)
    mint = lambda p: subprocess.run([binary, "token", "mint", p], env=env, check=True, capture_output=True, text=True).stdout.strip()
    proc = subprocess.Popen([binary, "serve", "ledger"], env=env)
    addr = env["PAYMESH_LEDGER_LISTEN"]
    try:
        _wait_serving(proc, addr, "ledger")
        yield addr, mint("service:demo"), mint("merchant:m1"), env["PAYMESH_TELEMETRY_METRICS_LISTEN"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)  # the run's keys


@pytest.fixture(scope="session")
def merchant_stubs(stubs):
    """(merchant_pb2, merchant_pb2_grpc), generated by the `stubs` fixture."""
    from paymesh.merchant.v1 import merchant_pb2, merchant_pb2_grpc

    return merchant_pb2, merchant_pb2_grpc


BANK_WEBHOOK_SECRET = "python-bank-secret-0001"


def _mesh(name, services, extra_env=None):
    """`paymesh serve <service>` for each of `services` (in order), one process each, calling
    each other at their listen addresses, on one fresh database with fresh keys.

    Yields ({service: address}, a function minting a token for a principal).
    """
    binary = _binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"paymesh-grpc-{name}-"))
    env = dict(os.environ)
    addrs = {service: f"127.0.0.1:{_free_port()}" for service in services}
    env.update(
        PAYMESH_DATABASE_URL=_database_url(f"grpc_{name}_{secrets.token_hex(6)}"),
        PAYMESH_AUTH_PRIVATE_KEY_FILE=str(work / "private" / "mesh.pem"),
        PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE=str(work / "private" / "operator.pem"),
        PAYMESH_AUTH_PUBLIC_KEYS_DIR=str(work / "public"),
        PAYMESH_TELEMETRY_LOG_LEVEL="warn",
    )
    if "payment" in services:
        # The banks' HTTP edge, the key of the test bank, and quick webhook retries.
        addrs["payment_webhook"] = f"127.0.0.1:{_free_port()}"
        env.update(
            PAYMESH_PAYMENT_WEBHOOK_LISTEN=addrs["payment_webhook"],
            PAYMESH_PAYMENT_BANK_WEBHOOK_SECRETS=f"970436={BANK_WEBHOOK_SECRET}",
            PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MS="100",
            PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MAX_MS="500",
            PAYMESH_PAYMENT_WEBHOOK_POLL_MS="50",
        )
    if "stall" in services:
        # The vendors' page, status checks every second, and the stack's broker if there is one.
        addrs["stall_page"] = f"127.0.0.1:{_free_port()}"
        env.update(
            PAYMESH_STALL_PAGE_LISTEN=addrs["stall_page"],
            PAYMESH_STALL_STATUS_CHECK_MS="1000",
            PAYMESH_STALL_MQTT_URL=os.environ.get("PAYMESH_MQTT_URL", ""),
            PAYMESH_STALL_MQTT_POLL_MS="100",
        )
    env.update(extra_env or {})
    for i, service in enumerate(services):
        env[f"PAYMESH_{service.upper()}_LISTEN"] = addrs[service]
        for peer in services[:i]:  # a service reaches the ones before it
            env[f"PAYMESH_{service.upper()}_{peer.upper()}_ADDR"] = addrs[peer]
    subprocess.run([binary, "token", "keygen"], env=env, check=True)
    mint = lambda p: subprocess.run([binary, "token", "mint", p], env=env, check=True, capture_output=True, text=True).stdout.strip()
    mint.keys = work  # the keygen's folder (private/, public/), for tests that mint their own tokens
    procs = []
    try:
        for service in services:
            procs.append(
                subprocess.Popen(
                    [binary, "serve", service],
                    env={**env, "PAYMESH_TELEMETRY_METRICS_LISTEN": f"127.0.0.1:{_free_port()}"},
                )
            )
            _wait_serving(procs[-1], addrs[service], service)
        yield addrs, mint
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)  # the run's keys


@pytest.fixture(scope="session")
def merchant():
    """A `paymesh serve merchant` calling its own `paymesh serve ledger`, on one fresh database.

    Yields (merchant address, token for operator:pytest, a function minting a token for a principal).
    """
    for addrs, mint in _mesh("merchant", ["ledger", "merchant"]):
        yield addrs["merchant"], mint("operator:pytest"), mint


@pytest.fixture(scope="session")
def payment_stubs(stubs):
    """(payment_pb2, payment_pb2_grpc), generated by the `stubs` fixture."""
    from paymesh.payment.v1 import payment_pb2, payment_pb2_grpc

    return payment_pb2, payment_pb2_grpc


@pytest.fixture(scope="session")
def payment():
    """Ledger, merchant and payment services, each its own `paymesh serve` process.

    Yields ({service: address}, a function minting a token for a principal).
    """
    yield from _mesh("payment", ["ledger", "merchant", "payment"])


@pytest.fixture(scope="session")
def billing_stubs(stubs):
    """(billing_pb2, billing_pb2_grpc), generated by the `stubs` fixture."""
    from paymesh.billing.v1 import billing_pb2, billing_pb2_grpc

    return billing_pb2, billing_pb2_grpc


@pytest.fixture(scope="session")
def billing():
    """Ledger, merchant, billing and payment services (the payment service hands bank credits
    quoting a bill's reference to billing), each its own `paymesh serve` process.

    Yields ({service: address}, a function minting a token for a principal).
    """
    yield from _mesh("billing", ["ledger", "merchant", "billing", "payment"])


@pytest.fixture(scope="session")
def settlement_stubs(stubs):
    """(settlement_pb2, settlement_pb2_grpc), generated by the `stubs` fixture."""
    from paymesh.settlement.v1 import settlement_pb2, settlement_pb2_grpc

    return settlement_pb2, settlement_pb2_grpc


@pytest.fixture(scope="session")
def settlement():
    """The whole mesh (ledger, merchant, billing, payment, settlement), each its own `paymesh
    serve` process; settlement's scheduled job off (the test closes its day itself).

    Yields ({service: address}, a function minting a token for a principal).
    """
    yield from _mesh(
        "settlement",
        ["ledger", "merchant", "billing", "payment", "settlement"],
        {"PAYMESH_SETTLEMENT_SCHEDULE_POLL_MS": "0"},
    )


@pytest.fixture(scope="session")
def stall_stubs(stubs):
    """(stall_pb2, stall_pb2_grpc), generated by the `stubs` fixture."""
    from paymesh.stall.v1 import stall_pb2, stall_pb2_grpc

    return stall_pb2, stall_pb2_grpc


@pytest.fixture(scope="session")
def stall():
    """Ledger, merchant, payment and stall services, each its own `paymesh serve` process; the
    stall page at addrs["stall_page"].

    Yields ({service: address}, a function minting a token for a principal).
    """
    yield from _mesh("stall", ["ledger", "merchant", "payment", "stall"])
