"""Checks of the CDP harness (cdp.py) against a real headless Chromium and a tiny local page.

The page is served by http.server on 127.0.0.1 (an ephemeral port, in a thread); it shows a QR
code as inline SVG (made with segno) and sets two cookies. Screenshots go to
.paymesh/artifacts/browser/ (one per test, named after it, plus its console when it logged).

Without chromium or zbarimg the tests are skipped, unless $CI is set: then they fail.
"""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import segno

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import (  # noqa: E402
    Browser,
    BrowserNotFound,
    JSError,
    NavigationError,
    Page,
    _group_members_running,
    find_chromium,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / ".paymesh" / "artifacts" / "browser"
# A fresh payload each run, so that a stale screenshot can never pass the QR check.
QR_TEXT = "paymesh-harness-" + secrets.token_hex(8)
VIETNAMESE = "Cà phê sữa đá — 25.000 ₫ · Nguyễn Văn Ất · ĐẶC BIỆT · ơ ư ạ ệ ộ ỹ"


def _require(what: str, found: bool, hint: str) -> None:
    """Skip when a tool is missing on a developer's machine; fail under CI."""
    if found:
        return
    message = f"{what} is not installed ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this is a failure")
    pytest.skip(message)


def _page_html() -> str:
    svg = segno.make(QR_TEXT, error="m").svg_inline(scale=6, border=4, dark="#000", light="#fff")
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>paymesh harness</title>
<style>body {{ font-family: sans-serif; margin: 16px; }} #qr svg {{ width: 300px; height: 300px; }}</style>
</head><body>
<h1>{VIETNAMESE}</h1>
<div id="qr">{svg}</div>
<p id="status">loading</p>
<script>
  console.log("harness page booted");
  window.later = (ms) => {{
    document.getElementById("status").textContent = "waiting";
    setTimeout(() => {{
      const done = document.createElement("p");
      done.id = "done";
      done.textContent = "done after " + ms + " ms";
      document.body.appendChild(done);
    }}, ms);
  }};
  window.ping = () => fetch("/ping", {{cache: "no-store"}})
    .then((r) => r.json()).then((j) => "ok:" + j.pong, (e) => "error:" + e.message);
</script>
</body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/":
            self._send(200, "text/html; charset=utf-8", _page_html().encode(), cookies=True)
        elif self.path == "/favicon.ico":
            self._send(204, "image/x-icon", b"")
        elif self.path == "/ping":
            self._send(200, "application/json", b'{"pong": true}')
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, body: bytes, cookies: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if cookies:
            self.send_header("Set-Cookie", "pm_session=s3cr3t; Path=/; HttpOnly; SameSite=Strict")
            self.send_header("Set-Cookie", "pm_prefs=compact; Path=/; SameSite=Lax")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _chromium() -> str:
    try:
        return find_chromium()
    except BrowserNotFound as e:
        _require("chromium", False, str(e))
        raise


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(_chromium()) as b:
        yield b


@pytest.fixture()
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A phone-sized tab; its last state is saved to the artifacts folder after the test."""
    p = browser.new_page()
    try:
        yield p
    finally:
        try:
            p.screenshot(ARTIFACTS / f"{request.node.name}.png")
            console = p.console_messages()
            if console:
                (ARTIFACTS / f"{request.node.name}.console.txt").write_text("\n".join(console) + "\n")
        except Exception as e:  # a dead page must not hide the test's own failure
            print(f"could not save the page of {request.node.name}: {e}")
        p.close()


def test_page_loads_and_evaluate(page: Page, server: str) -> None:
    page.goto(server + "/")
    assert page.url() == server + "/"
    assert page.evaluate("document.title") == "paymesh harness"
    assert page.evaluate("1 + 2") == 3
    assert page.evaluate("({a: [1, 'x', null], b: true})") == {"a": [1, "x", None], "b": True}
    assert page.evaluate("undefined") is None
    assert page.evaluate("Promise.resolve(41).then((x) => x + 1)") == 42
    assert page.evaluate("[innerWidth, innerHeight, devicePixelRatio]") == [390, 844, 2]
    with pytest.raises(JSError, match="boom"):
        page.evaluate("(() => { throw new Error('boom'); })()")
    with pytest.raises(JSError, match="nope"):
        page.evaluate("Promise.reject(new Error('nope'))")
    assert "log: harness page booted" in page.console_messages()


def test_wait_for_sees_a_later_dom_change(page: Page, server: str) -> None:
    page.goto(server + "/")
    started = time.monotonic()
    page.evaluate("later(500)")
    text = page.wait_for("document.querySelector('#done')?.textContent", timeout=5)
    waited = time.monotonic() - started
    assert text == "done after 500 ms"
    assert waited >= 0.45, f"wait_for returned after {waited:.3f} s, before the timer could fire"
    # A predicate that stays false ends in TimeoutError, with its last value, on time.
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="last value: None"):
        page.wait_for("document.querySelector('#never')", timeout=0.3)
    assert time.monotonic() - started < 3
    # JavaScript truthiness: an empty array is a truthy value.
    assert page.wait_for("[]", timeout=1) == []


def test_cookie_flags(page: Page, server: str) -> None:
    page.goto(server + "/")
    cookies = {c["name"]: c for c in page.cookies()}
    assert cookies["pm_session"]["httpOnly"] is True
    assert cookies["pm_session"]["sameSite"] == "Strict"
    assert cookies["pm_prefs"]["httpOnly"] is False
    assert cookies["pm_prefs"]["sameSite"] == "Lax"
    # HttpOnly really hides the cookie from the page's scripts.
    assert page.evaluate("document.cookie") == "pm_prefs=compact"


def test_offline_and_back(page: Page, server: str) -> None:
    page.goto(server + "/")
    assert page.evaluate("ping()") == "ok:true"
    try:
        page.set_offline(True)
        assert page.evaluate("ping()").startswith("error:")
        assert page.evaluate("navigator.onLine") is False
        with pytest.raises(NavigationError, match="ERR_INTERNET_DISCONNECTED"):
            page.goto(server + "/")
    finally:
        page.set_offline(False)
    page.goto(server + "/")
    assert page.evaluate("ping()") == "ok:true"
    assert page.evaluate("navigator.onLine") is True


def test_reload_gives_a_new_document(page: Page, server: str) -> None:
    page.goto(server + "/")
    page.evaluate("window.marker = 'old document'")
    page.reload()
    assert page.evaluate("window.marker") is None
    assert page.evaluate("document.readyState") == "complete"


def test_navigation_error(page: Page) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NavigationError, match="ERR_CONNECTION_REFUSED"):
        page.goto(f"http://127.0.0.1:{port}/", timeout=10)
    # The tab is usable right away: it shows Chromium's error page.
    assert page.url() == f"http://127.0.0.1:{port}/"
    assert page.evaluate("location.href") == "chrome-error://chromewebdata/"


def test_vietnamese_text_has_glyphs(page: Page, server: str) -> None:
    """Every Vietnamese letter draws as a glyph, not as the box of a missing one (the boxes
    appear when only fonts-liberation is installed; infra/test.sh installs fonts-noto-core)."""
    page.goto(server + "/")
    missing = page.evaluate(
        """(() => {
          const canvas = document.createElement("canvas");
          canvas.width = canvas.height = 64;
          const g = canvas.getContext("2d", {willReadFrequently: true});
          const draw = (ch) => {
            g.clearRect(0, 0, 64, 64);
            g.font = "40px sans-serif";
            g.fillText(ch, 8, 48);
            return g.getImageData(0, 0, 64, 64).data.join(",");
          };
          const box = draw("\\u0378");  // an unassigned code point: no font has it
          return [..."àữáạệộươỹẶỆẤđĐ₫"].filter((ch) => draw(ch) === box);
        })()"""
    )
    assert missing == [], f"drawn as missing glyphs: {missing}; install fonts-noto-core"


def test_phone_screenshot_qr_decodes(page: Page, server: str, tmp_path: Path) -> None:
    zbarimg = shutil.which("zbarimg")
    _require("zbarimg", zbarimg is not None, "apt-get install zbar-tools")
    assert zbarimg is not None
    page.goto(server + "/")
    page.wait_for("document.querySelector('#qr svg')?.getBoundingClientRect().width >= 300")
    shot = page.screenshot(tmp_path / "qr-phone.png")  # its own file: runs may overlap
    with shot.open("rb") as f:  # PNG: signature, IHDR length and type, then width and height
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (780, 1688)
    done = subprocess.run(
        [zbarimg, "--raw", "-q", str(shot)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"zbarimg found no code in {shot}: {done.stderr}"
    assert done.stdout.strip() == QR_TEXT


def test_close_kills_chromium_and_removes_its_profile() -> None:
    with Browser(_chromium()) as b:
        pid, profile = b.pid, b.user_data_dir
        assert profile.is_dir()
        b.new_page().goto("about:blank")
    assert not profile.exists()
    assert _group_members_running(pid) == [], "Chromium processes left running after close()"
