"""A small harness that drives a real headless Chromium through the Chrome DevTools Protocol.

Standard library only. Chromium is started with ``--remote-debugging-pipe``: commands go to it on
its file descriptor 3 and its answers and events come back on its descriptor 4, each message a
JSON text ended by a NUL byte. No port is opened, so nothing else on the machine can connect to
it, no port can be taken by another process, and the browser quits by itself when the pipe
closes (when the process that started it dies).

Every wait is bounded: each CDP command has a timeout, and so has every wait for an event.

    with Browser() as browser:
        page = browser.new_page()              # a phone: 390 x 844 CSS px, device scale 2
        page.goto("http://127.0.0.1:8000/")
        page.wait_for("document.querySelector('#status')?.textContent === 'ready'")
        page.screenshot(".paymesh/artifacts/browser/ready.png")
"""

from __future__ import annotations

import base64
import collections
import fcntl
import itertools
import json
import os
import select
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "Browser",
    "BrowserNotFound",
    "CDPError",
    "JSError",
    "NavigationError",
    "Page",
    "find_chromium",
]

# Debian's /usr/bin/chromium is a shell launcher that adds flags of its own (extensions, a
# findmnt probe of /dev/shm that prints shell errors on some machines) and then execs this.
_DEBIAN_BINARY = "/usr/lib/chromium/chromium"

# Flags for a quiet, deterministic browser that runs as root in a container with no network.
_FLAGS = [
    "--headless=new",  # Chromium >= 112; older ones read any --headless=... as the old headless
    "--no-sandbox",  # the sandbox refuses to run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a small /dev/shm (containers) crashes renderers otherwise
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    # Pages that are not in front must keep their timers running at full speed.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-ipc-flooding-protection",
    "--password-store=basic",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class BrowserNotFound(FileNotFoundError):
    """No Chromium binary: install Debian's ``chromium`` or set $PAYMESH_CHROMIUM."""


class CDPError(RuntimeError):
    """The browser answered a command with an error, or went away."""


class JSError(CDPError):
    """JavaScript run by :meth:`Page.evaluate` threw (or its promise rejected)."""


class NavigationError(CDPError):
    """A navigation failed (net::ERR_CONNECTION_REFUSED, net::ERR_INTERNET_DISCONNECTED, ...)."""


def find_chromium() -> str:
    """The Chromium binary to run: $PAYMESH_CHROMIUM, else Debian's ``chromium``.

    Raises BrowserNotFound when there is none.
    """
    wanted = os.environ.get("PAYMESH_CHROMIUM")
    if wanted:
        path = shutil.which(wanted)
        if not path:
            raise BrowserNotFound(f"$PAYMESH_CHROMIUM={wanted!r} is not an executable")
        return path
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            if os.access(_DEBIAN_BINARY, os.X_OK) and _is_script(path):
                return _DEBIAN_BINARY
            return path
    if os.access(_DEBIAN_BINARY, os.X_OK):
        return _DEBIAN_BINARY
    raise BrowserNotFound("no chromium: apt-get install chromium, or set $PAYMESH_CHROMIUM")


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _high_fd(fd: int) -> int:
    """Move fd to a number >= 10 (close-on-exec), so that the child's dup2 onto 3 and 4 can
    never overwrite one of its sources."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its pid and group stay reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _exit_state(pid: int, wait: float) -> str:
    """How the child ended (waiting up to ``wait`` s for it to), without reaping it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return "exited"
        if info is not None:
            if info.si_code == os.CLD_EXITED:
                return f"exited with status {info.si_status}"
            return f"killed by signal {info.si_status}"
        if time.monotonic() >= deadline:
            return "still running"
        time.sleep(0.02)


def _group_members_running(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not exited yet (Linux: read from /proc)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            running.append(int(stat.parent.name))
    return running


def _kill_and_reap(pid: int, temp_root: str) -> None:
    """Kill the browser's whole process group, reap it and remove its folder (idempotent; also
    run by the finalizer when a Browser is dropped without being closed)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        time.sleep(0.01)
    # SIGKILL is delivered at once but a process takes a moment to die: wait until no member
    # of the group runs any more (zombies left to PID 1 do not count), so that none writes
    # into the profile while it is being removed.
    while _group_members_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(3):
        shutil.rmtree(temp_root, ignore_errors=True)
        if not os.path.exists(temp_root):
            break
        time.sleep(0.1)


class _Pending:
    __slots__ = ("done", "message", "failure", "session_id")

    def __init__(self, session_id: str | None) -> None:
        self.done = threading.Event()
        self.message: dict[str, Any] | None = None
        self.failure: str | None = None
        self.session_id = session_id


class Browser:
    """A headless Chromium process. Use as a context manager; :meth:`close` kills it and
    removes its temporary profile.

    ``command_timeout`` bounds each CDP command that is not given a timeout of its own;
    ``launch_timeout`` bounds the start (the first answer from the browser).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        extra_args: tuple[str, ...] = (),
        command_timeout: float = 10.0,
        launch_timeout: float = 30.0,
    ) -> None:
        self.binary = binary or find_chromium()
        self.command_timeout = command_timeout
        self._temp_root = tempfile.mkdtemp(prefix="paymesh-chromium-")
        self.user_data_dir = Path(self._temp_root, "profile")
        self.user_data_dir.mkdir()
        self.log_path = Path(self._temp_root, "chromium.log")
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._pages: dict[str, Page] = {}
        self._gone: str | None = None  # why the connection is over, once it is
        self._closed = False

        cmd_r, self._cmd_w = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._res_r, res_w = os.pipe()  # Chromium writes on fd 4; we read
        cmd_r, res_w = _high_fd(cmd_r), _high_fd(res_w)
        log_fd = _high_fd(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        argv = [
            self.binary,
            *_FLAGS,
            f"--user-data-dir={self.user_data_dir}",
            *extra_args,
            "about:blank",
        ]
        try:
            # posix_spawn runs no Python code in the child (unlike preexec_fn), so this is safe
            # while other threads (a test's HTTP server) are running.
            self.pid = os.posix_spawn(
                self.binary,
                argv,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    (os.POSIX_SPAWN_DUP2, cmd_r, 3),
                    (os.POSIX_SPAWN_DUP2, res_w, 4),
                ],
                setpgroup=0,  # its own process group: close() kills renderers and helpers too
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as subprocess does
            )
        except BaseException:
            for fd in (self._cmd_w, self._res_r):
                os.close(fd)
            shutil.rmtree(self._temp_root, ignore_errors=True)
            raise
        finally:
            for fd in (cmd_r, res_w, log_fd):  # the child has its own copies now
                os.close(fd)
        self._finalizer = weakref.finalize(self, _kill_and_reap, self.pid, self._temp_root)
        os.set_blocking(self._cmd_w, False)
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        try:
            self.version: dict[str, Any] = self.send("Browser.getVersion", timeout=launch_timeout)
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the browser to quit (2 s at most), then kill its process group and remove its
        temporary profile. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._gone is None:
            try:
                self.send("Browser.close", timeout=2)
            except (CDPError, TimeoutError, OSError):
                pass
            deadline = time.monotonic() + 3
            while not _exited(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        self._finalizer()  # kill the group (whatever is left of it), reap, remove the folder
        self._reader.join(timeout=2)  # it stops at the end of the pipe, now that Chromium is gone
        self._disconnect("the browser was closed")
        os.close(self._cmd_w)
        if not self._reader.is_alive():  # never close a descriptor that a thread still reads
            os.close(self._res_r)

    def log_tail(self, limit: int = 2000) -> str:
        """The end of Chromium's stdout/stderr (for error messages)."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        if len(data) > limit:
            data = data[-limit:]
            data = data[data.find(b"\n") + 1 :]  # from the start of a line
        return data.decode("utf-8", "replace")

    # -- pages ---------------------------------------------------------------------------------

    def new_page(
        self,
        width: int = 390,
        height: int = 844,
        mobile: bool = True,
        device_scale_factor: float = 2,
    ) -> Page:
        """A new tab with the given viewport (CSS pixels); by default a phone (touch, mobile
        viewport rules, device scale 2, so screenshots are 780 x 1688 pixels)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, target, session["sessionId"])
        with self._lock:
            self._pages[page.session_id] = page
        page._setup(width, height, mobile, device_scale_factor)
        return page

    # -- protocol ------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one CDP command and wait (``timeout`` s, default ``command_timeout``) for its
        result. Raises CDPError for an error answer or a lost browser, TimeoutError when no
        answer came in time."""
        timeout = self.command_timeout if timeout is None else timeout
        slot = _Pending(session_id)
        with self._lock:
            if self._gone is not None:
                raise CDPError(f"{method}: {self._gone}")
            ident = next(self._ids)
            self._pending[ident] = slot
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        try:
            self._write(message, time.monotonic() + timeout)
            if not slot.done.wait(timeout):
                raise TimeoutError(f"CDP {method}: no answer from Chromium within {timeout:.3g} s")
        finally:
            with self._lock:
                self._pending.pop(ident, None)
        if slot.failure is not None:
            raise CDPError(f"{method}: {slot.failure}")
        assert slot.message is not None
        if "error" in slot.message:
            err = slot.message["error"]
            detail = f" ({err['data']})" if err.get("data") else ""
            raise CDPError(f"{method}: {err.get('message')}{detail}")
        result: dict[str, Any] = slot.message.get("result", {})
        return result

    def _send_nowait(self, method: str, params: dict[str, Any], session_id: str) -> None:
        """Fire a command without waiting for its answer (used from the reader thread)."""
        message = {"id": next(self._ids), "method": method, "params": params, "sessionId": session_id}
        try:
            self._write(message, time.monotonic() + 2)
        except (OSError, TimeoutError, CDPError):
            pass

    def _write(self, message: dict[str, Any], deadline: float) -> None:
        data = memoryview(json.dumps(message).encode() + b"\0")
        with self._write_lock:
            while data:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"CDP {message['method']}: Chromium is not reading its pipe")
                if self._gone is not None:
                    raise CDPError(f"{message['method']}: {self._gone}")
                _, writable, _ = select.select([], [self._cmd_w], [], min(remaining, 0.5))
                if not writable:
                    continue
                try:
                    data = data[os.write(self._cmd_w, data) :]
                except BlockingIOError:
                    continue
                except OSError as e:  # EPIPE: the browser is gone
                    raise CDPError(f"{message['method']}: {self._gone or e}") from e

    def _read_loop(self) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = os.read(self._res_r, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            start = len(buffer)
            buffer += chunk
            while True:
                end = buffer.find(b"\0", start)
                if end < 0:
                    break
                raw, buffer = bytes(buffer[:end]), buffer[end + 1 :]
                start = 0
                try:
                    self._dispatch(json.loads(raw))
                except Exception as e:  # never let one odd message stop the reader
                    print(f"cdp: could not handle a message from Chromium: {e!r}")
        if self._closed:
            self._disconnect("the browser was closed")
        else:
            state = _exit_state(self.pid, wait=1)
            log = self.log_tail().strip() or "(nothing)"
            self._disconnect(f"Chromium closed its pipe ({state}); its output ends with:\n{log}")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._lock:
                slot = self._pending.get(message["id"])
            if slot is not None:
                slot.message = message
                slot.done.set()
            return
        method, params = message.get("method", ""), message.get("params", {})
        session_id = message.get("sessionId")
        with self._lock:
            page = self._pages.get(session_id) if session_id else None
        if page is not None:
            page._on_event(method, params)
        elif method == "Target.detachedFromTarget":
            self._end_session(params.get("sessionId"), "the page was closed or detached")

    def _end_session(self, session_id: str | None, reason: str) -> None:
        with self._lock:
            page = self._pages.pop(session_id or "", None)
        self._fail_pending(session_id, reason)
        if page is not None:
            page._end(reason)

    def _fail_pending(self, session_id: str | None, reason: str) -> None:
        with self._lock:
            slots = [s for s in self._pending.values() if s.session_id == session_id]
        for slot in slots:
            slot.failure = reason
            slot.done.set()

    def _disconnect(self, reason: str) -> None:
        with self._lock:
            if self._gone is None:
                self._gone = reason
            slots = list(self._pending.values())
            pages = list(self._pages.values())
        for slot in slots:
            slot.failure = reason
            slot.done.set()
        for page in pages:
            page._end(reason)


class Page:
    """One tab, attached through a flat CDP session. Made by :meth:`Browser.new_page`."""

    _MAX_EVENTS = 5000  # recent events kept for waits; older ones are dropped

    def __init__(self, browser: Browser, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self._cond = threading.Condition()
        self._events: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque(
            maxlen=self._MAX_EVENTS
        )
        self._seq = 0
        self._console: list[str] = []
        self._ended: str | None = None
        self.frame_id = ""

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self, width: int, height: int, mobile: bool, scale: float) -> None:
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": height,
                "deviceScaleFactor": scale,
                "mobile": mobile,
                "screenWidth": width,
                "screenHeight": height,
            },
        )
        if mobile:
            self.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        self.send("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.frame_id = self._main_frame()["id"]

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Any CDP command in this page's session (for what the helpers below do not cover)."""
        if self._ended is not None:
            raise CDPError(f"{method}: {self._ended}")
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def close(self) -> None:
        """Close the tab (a no-op once the browser is gone)."""
        if self._ended is None and self.browser._gone is None:
            try:
                self.browser.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5)
            except (CDPError, TimeoutError):
                pass

    # -- navigation ----------------------------------------------------------------------------

    def goto(self, url: str, wait_load: bool = True, timeout: float = 15) -> None:
        """Navigate the tab to ``url``; with ``wait_load``, return once its load event fired.
        Raises NavigationError when the navigation fails (refused, offline, bad URL); the tab
        then shows Chromium's error page. An HTTP error status is not a failure."""
        deadline = time.monotonic() + timeout
        since = self._seq
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        loader = result.get("loaderId")
        error = result.get("errorText")
        if wait_load and loader:  # no loaderId: a same-document navigation (#fragment)
            try:
                self._wait_event(
                    lambda m, p: (
                        m == "Page.lifecycleEvent" and p.get("name") == "load" and p.get("loaderId") == loader
                    ),
                    since,
                    deadline,
                    f"the load event of {url}",
                )
            except (TimeoutError, CDPError):
                if not error:
                    raise
        if error:
            # Raised once Chromium's error page has loaded (when waiting): until it has, the tab
            # answers most commands with "Not attached to an active page".
            raise NavigationError(f"goto {url}: {error}")

    def reload(self, timeout: float = 15) -> None:
        """Reload the page and wait for its new document's load event."""
        deadline = time.monotonic() + timeout
        old_loader = self._main_frame().get("loaderId")
        since = self._seq
        self.send("Page.reload", {"ignoreCache": True}, timeout=timeout)
        self._wait_event(
            lambda m, p: (
                m == "Page.lifecycleEvent"
                and p.get("name") == "load"
                and p.get("frameId") == self.frame_id
                and p.get("loaderId") != old_loader
            ),
            since,
            deadline,
            "the load event after reload",
        )

    def url(self) -> str:
        """The URL of the current entry of the tab's history."""
        history = self.send("Page.getNavigationHistory")
        return str(history["entries"][history["currentIndex"]]["url"])

    def _main_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = self.send("Page.getFrameTree")["frameTree"]["frame"]
        return frame

    # -- JavaScript ----------------------------------------------------------------------------

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """Run JavaScript in the page and return its value as JSON (a promise is awaited;
        undefined and values that are not JSON, like DOM nodes, come back as None or {}).
        Raises JSError with the exception's text when it throws or its promise rejects."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True, "userGesture": True},
            timeout=timeout,
        )
        details = result.get("exceptionDetails")
        if details:
            exc = details.get("exception") or {}
            text = exc.get("description") or exc.get("value") or details.get("text") or "exception"
            raise JSError(f"{text}\n  in: {_short(expression)}")
        value = result.get("result", {})
        if "unserializableValue" in value:  # NaN, Infinity, -0, 12n
            raw = value["unserializableValue"]
            return int(raw[:-1]) if raw.endswith("n") else float(raw)
        return value.get("value")

    def wait_for(self, predicate: str, timeout: float = 5, interval: float = 0.05) -> Any:
        """Evaluate the JavaScript expression ``predicate`` every ``interval`` s until it is
        truthy (by JavaScript's rules) and return its value. Exceptions while waiting (an element
        not there yet, a page between two documents) count as not yet. Raises TimeoutError with
        the last value or error and the page's last console messages."""
        deadline = time.monotonic() + timeout
        wrapped = (
            f"(async () => {{ const v = await (\n{predicate.strip().rstrip(';')}\n); return [!!v, v]; }})()"
        )
        last: Any = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                ok, value = self.evaluate(
                    wrapped, timeout=max(0.1, min(remaining, self.browser.command_timeout))
                )
                if ok:
                    return value
                last = value
            except (CDPError, TimeoutError) as e:
                if self._ended is not None or self.browser._gone is not None:
                    raise
                last = e
            if time.monotonic() + interval > deadline:
                console = "\n    ".join(self.console_messages()[-10:]) or "(none)"
                raise TimeoutError(
                    f"wait_for timed out after {timeout:g} s: {_short(predicate)}\n"
                    f"  last value: {last!r}\n  console:\n    {console}"
                )
            time.sleep(interval)

    # -- screen, cookies, network, console -----------------------------------------------------

    def screenshot(self, path: str | os.PathLike[str], timeout: float = 30) -> Path:
        """Write a PNG of the viewport (device pixels: 780 x 1688 for the default phone)."""
        data = self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, timeout=timeout
        )
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it and renamed: a reader (zbarimg, a person) never sees half a file.
        fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64decode(data["data"]))
            os.replace(temp, out)
        except BaseException:
            os.unlink(temp)
            raise
        return out

    def cookies(self, urls: list[str] | None = None) -> list[dict[str, Any]]:
        """The cookies the browser would send to the current page (or to ``urls``), as CDP gives
        them: name, value, domain, path, expires, httpOnly, secure, session, sameSite, ..."""
        result = self.send("Network.getCookies", {"urls": urls} if urls else {})
        cookies: list[dict[str, Any]] = result["cookies"]
        return cookies

    def set_offline(self, offline: bool) -> None:
        """Cut (True) or restore (False) the tab's network, as a dropped connection would:
        requests fail with net::ERR_INTERNET_DISCONNECTED and navigator.onLine follows.
        In force for every request the page starts after this returns (see below); a side
        effect is that the browser's HTTP cache is emptied."""
        self.send(
            "Network.emulateNetworkConditions",
            {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        # Chromium answers that command once the renderer has it, and sends the conditions to
        # its network service without waiting: a fetch the page starts right after could still
        # slip through (seen about once in a thousand switches on a loaded machine). Clearing
        # the HTTP cache is a round trip to the network service on the same channel, so once it
        # is answered the service has the new conditions (no slip seen in 6,000 switches).
        self.send("Network.clearBrowserCache")

    def console_messages(self) -> list[str]:
        """What the page logged so far, one line each: console calls (``log: ...``), uncaught
        exceptions (``exception: ...``), browser log entries (``network error: ...``) and
        dialogs (which are accepted by themselves so that they never block a test)."""
        with self._cond:
            return list(self._console)

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        line = None
        if method == "Runtime.consoleAPICalled":
            line = f"{params.get('type')}: " + " ".join(_remote_text(a) for a in params.get("args", []))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            line = "exception: " + ((d.get("exception") or {}).get("description") or d.get("text", ""))
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            line = f"{e.get('source')} {e.get('level')}: {e.get('text')} {e.get('url') or ''}".rstrip()
        elif method == "Page.javascriptDialogOpening":
            line = f"dialog {params.get('type')}: {params.get('message')}"
            self.browser._send_nowait("Page.handleJavaScriptDialog", {"accept": True}, self.session_id)
        elif method == "Inspector.targetCrashed":
            line = "crash: the page's renderer crashed"
        if method == "Inspector.targetCrashed":
            self.browser._fail_pending(self.session_id, "the page's renderer crashed")
        with self._cond:
            if line is not None:
                self._console.append(line)
            if method == "Inspector.targetCrashed":
                self._ended = "the page's renderer crashed"
            self._seq += 1
            self._events.append((self._seq, method, params))
            self._cond.notify_all()

    def _end(self, reason: str) -> None:
        with self._cond:
            if self._ended is None:
                self._ended = reason
            self._cond.notify_all()

    def _wait_event(
        self,
        match: Callable[[str, dict[str, Any]], bool],
        since: int,
        deadline: float,
        what: str,
    ) -> dict[str, Any]:
        """The first event after sequence number ``since`` that ``match``es, waiting until
        ``deadline`` (time.monotonic())."""
        with self._cond:
            while True:
                for seq, method, params in self._events:
                    if seq > since and match(method, params):
                        return params
                if self._ended is not None:
                    raise CDPError(f"waiting for {what}: {self._ended}")
                since = self._seq
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out waiting for {what}")
                self._cond.wait(remaining)


def _remote_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("unserializableValue") or obj.get("description") or obj.get("type", "?"))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
