"""The vendor's stall page as a vendor uses it, in a real headless Chromium (Debian's package,
driven by tests/browser/cdp.py): she opens her sign-in link, sees her stall's QR (decoded from a
phone-sized screenshot by zbarimg), turns the sound on, a bank credit appears within a second
with the right amount and words and is spoken once, a reload shows it once, she asks for an
amount and sees the dynamic QR replaced by "paid", and an unpaid one becomes "expired". The mesh
is real: `paymesh serve` processes of the ledger, merchant, payment and stall services.

The screenshot of the page at phone size is kept as .paymesh/artifacts/browser/stall-page.png.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2

from test_merchant_surface import _approved_vendor, _call

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "browser"))
from cdp import Browser  # noqa: E402

ARTIFACTS = ROOT / ".paymesh" / "artifacts" / "browser"


def _require(tool):
    if shutil.which(tool) or (tool == "chromium" and os.environ.get("PAYMESH_CHROMIUM")):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is not installed (infra/test.sh installs it); CI is set")
    pytest.skip(f"{tool} is not installed (infra/test.sh installs it)")


def _zbar(path):
    out = subprocess.run(["zbarimg", "--raw", "-q", str(path)], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def _tap(page, selector):
    """A real tap (a user gesture, which speech needs) at the element's centre."""
    box = page.evaluate(
        f"(() => {{ const e = document.querySelector({selector!r}); e.scrollIntoView({{block: 'center'}});"
        " const r = e.getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        page.send(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
        )


def _credit(addrs, mint, payment_stubs, stubs, vendor, amount, description="NGUYEN VAN A chuyen tien"):
    ppb, pgrpc = payment_stubs
    _, _, common_pb2 = stubs
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    answer = pgrpc.PaymentServiceStub(grpc.insecure_channel(addrs["payment"])).NotifyCredit(
        ppb.NotifyCreditRequest(
            bank_bin=vendor.collection_bank_bin,
            bank_transaction_id=f"FT{uuid.uuid4().hex[:12].upper()}",
            account_number=vendor.virtual_account_number,
            amount=common_pb2.Money(amount=str(amount), currency_code="VND"),
            description=description,
            value_time=now,
        ),
        metadata=_call(mint(f"bank:{vendor.collection_bank_bin}")),
    )
    return answer.credit.payment_id


def _tlv(payload):
    """EMV QR top-level fields: {tag: value} (two-digit tag, two-digit length)."""
    out, i = {}, 0
    while i + 4 <= len(payload):
        tag, length = payload[i : i + 2], int(payload[i + 2 : i + 4])
        out[tag] = payload[i + 4 : i + 4 + length]
        i += 4 + length
    return out


def _shown(page, payment_id):
    return page.evaluate(f"document.querySelectorAll('li[data-payment-id=\"{payment_id}\"]').length")


def test_a_vendor_signs_in_sees_her_qr_hears_payments_and_asks_for_amounts(
    stall, stall_stubs, merchant_stubs, payment_stubs, stubs
):
    _require("chromium")
    _require("zbarimg")
    addrs, mint = stall
    pb, sgrpc = stall_stubs
    vendor = _approved_vendor(addrs, mint, merchant_stubs)
    link = sgrpc.StallServiceStub(grpc.insecure_channel(addrs["stall"])).CreateSignInLink(
        pb.CreateSignInLinkRequest(merchant_id=vendor.id), metadata=_call(mint("operator:pytest"))
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = f"http://{addrs['stall_page']}/"

    with Browser() as browser, browser.new_page() as page:
        try:
            # Sign in through the link: a session cookie, and no secret left in the address.
            page.goto(link.url, wait_load=False)  # its page posts the token at once and moves on
            page.wait_for("location.pathname === '/' && !document.getElementById('stall-view').hidden", timeout=15)
            assert page.url() == home
            (cookie,) = [c for c in page.cookies([home]) if c["name"] == "pm_stall"]
            assert cookie["httpOnly"] is True
            assert cookie["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == "", "the session cookie is not readable by script"
            page.wait_for("document.getElementById('status').dataset.state === 'live'", timeout=10)
            assert page.evaluate("document.getElementById('name').textContent") == "Chè Mai"
            assert page.evaluate("document.getElementById('where').textContent") == "Chợ Đông Ba · Quầy K-7"
            assert page.evaluate("document.getElementById('account').textContent") == vendor.virtual_account_number
            # Nothing is wider than the phone (a wider page is zoomed out: small type, missed taps).
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            # The stall's QR, read from the phone-sized screenshot by zbarimg.
            page.wait_for("document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0")
            shot = page.screenshot(ARTIFACTS / "stall-page-qr.png")
            assert _zbar(shot) == vendor.static_qr_payload

            # Sound on (a tap), then a bank credit: shown within a second, with its words, spoken once.
            _tap(page, "#sound")
            page.wait_for("document.getElementById('sound').getAttribute('aria-pressed') === 'true'")
            paid = _credit(addrs, mint, payment_stubs, stubs, vendor, 150_000)
            page.wait_for(f"document.querySelector('li[data-payment-id=\"{paid}\"]')", timeout=1.0)
            item = page.evaluate(
                f"(() => {{ const li = document.querySelector('li[data-payment-id=\"{paid}\"]');"
                " return [li.querySelector('.amount').textContent, li.querySelector('.words').textContent]; })()"
            )
            assert item == ["150.000 đ", "một trăm năm mươi nghìn đồng"]
            page.wait_for("window.paymeshSpoken.length === 1", timeout=2)
            assert page.evaluate("window.paymeshSpoken") == ["Đã nhận một trăm năm mươi nghìn đồng"]
            assert page.evaluate("document.getElementById('today-total').textContent") == "150.000 đ"
            assert page.evaluate("document.getElementById('today-count').textContent") == "1"

            # The network drops; a payment lands meanwhile; back online it appears, once.
            page.set_offline(True)
            page.wait_for("document.getElementById('status').dataset.state !== 'live'", timeout=10)
            second = _credit(addrs, mint, payment_stubs, stubs, vendor, 105_000)
            time.sleep(0.5)
            page.set_offline(False)
            page.wait_for(f"document.querySelector('li[data-payment-id=\"{second}\"]')", timeout=15)
            page.wait_for("window.paymeshSpoken.length === 2", timeout=2)
            assert page.evaluate("window.paymeshSpoken")[1] == "Đã nhận một trăm linh năm nghìn đồng"
            assert _shown(page, paid) == 1 and _shown(page, second) == 1

            # A reload shows each payment once, and speaks neither again.
            page.reload()
            page.wait_for(f"document.querySelector('li[data-payment-id=\"{second}\"]')", timeout=10)
            _tap(page, "#sound")
            time.sleep(1.0)
            assert _shown(page, paid) == 1 and _shown(page, second) == 1
            assert page.evaluate("document.querySelectorAll('#payments li').length") == 2
            assert page.evaluate("document.getElementById('today-total').textContent") == "255.000 đ"
            assert page.evaluate("window.paymeshSpoken") == []

            # English, and back.
            _tap(page, "#lang")
            page.wait_for("document.documentElement.lang === 'en'")
            assert page.evaluate("document.querySelector('[data-i18n=received]').textContent") == "Received"
            _tap(page, "#lang")
            page.wait_for("document.documentElement.lang === 'vi'")

            # Ask for an amount: the dynamic QR (read by zbarimg), then paid.
            page.evaluate("document.getElementById('ask-amount').value = '250000'")
            _tap(page, "#ask-button")
            page.wait_for(
                "document.getElementById('ask-status').dataset.status === 'ACTIVE'"
                " || !document.getElementById('ask-error').hidden",
                timeout=10,
            )
            assert page.evaluate("document.getElementById('ask-error').hidden"), page.evaluate(
                "document.getElementById('ask-error').textContent"
            )
            page.wait_for("document.getElementById('ask-qr').complete && document.getElementById('ask-qr').naturalWidth > 0")
            # The page brought the QR on screen itself, clear of the bar at the top.
            assert page.evaluate(
                "(() => { const q = document.getElementById('ask-qr').getBoundingClientRect();"
                " const bar = document.querySelector('.bar').getBoundingClientRect();"
                " return q.top >= bar.bottom && q.bottom <= innerHeight; })()"
            )
            shot = page.screenshot(ARTIFACTS / "stall-page-ask.png")
            (dynamic,) = [q for q in _zbar(shot).splitlines() if q != vendor.static_qr_payload]
            fields = _tlv(dynamic)
            assert fields["54"] == "250000", fields  # the amount asked for
            reference = _tlv(fields["62"])["08"]  # the payment reference the buyer's bank carries
            assert reference.startswith("PM") and len(reference) == 13, fields
            assert page.evaluate("document.getElementById('ask-words').textContent") == "hai trăm năm mươi nghìn đồng"
            _credit(addrs, mint, payment_stubs, stubs, vendor, 250_000, f"MBVCB.99.{reference}.CT tu NGUYEN VAN B")
            page.wait_for("document.getElementById('ask-status').dataset.status === 'PAID'", timeout=1.0)
            assert "ĐÃ THANH TOÁN" in page.evaluate("document.getElementById('ask-status').textContent")
            assert page.evaluate("document.getElementById('ask-qr').hidden") is True

            # The page at phone size, for the README.
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(ARTIFACTS / "stall-page.png")

            # An amount nobody pays: "expired" once its minute has passed.
            page.evaluate("document.getElementById('ask-amount').value = '35000'")
            page.evaluate("document.getElementById('ask-expiry').value = '60'")
            _tap(page, "#ask-button")
            page.wait_for("document.getElementById('ask-status').dataset.status === 'ACTIVE'", timeout=10)
            page.wait_for("document.getElementById('ask-status').dataset.status === 'EXPIRED'", timeout=75)
            assert "HẾT HẠN" in page.evaluate("document.getElementById('ask-status').textContent")

            # Signing out ends the session: the page says to sign in again.
            _tap(page, "#signout-form button")
            page.wait_for("!document.getElementById('signed-out').hidden", timeout=10)
        finally:
            page.screenshot(ARTIFACTS / "test_stall_page-last.png")
            (ARTIFACTS / "test_stall_page.console.txt").write_text("\n".join(page.console_messages()))
