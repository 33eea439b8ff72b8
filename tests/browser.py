"""Headless Chromium driven over the DevTools protocol, for the report's browser test.

Chromium is started with ``--remote-debugging-pipe``: protocol messages are
JSON texts separated by NUL bytes on file descriptors 3 (to the browser) and
4 (from it), so no port, no WebSocket and no extra package are needed. Only
the few protocol calls the tests use are wrapped.

Run as a script to open a page and print its load time and console errors::

    python tests/browser.py results/report.html --screenshot /tmp/report.png
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_NAMES", "find_chromium", "Chromium", "BrowserError"]

#: Executable names tried, in order, unless the CHROMIUM environment variable names one.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")

_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
    "--mute-audio", "--remote-debugging-pipe",
)  # fmt: skip


class BrowserError(RuntimeError):
    """The browser did not start, answered with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if os.access(named, os.X_OK) else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium with one page, as a context manager.

    Events of the page (console calls, exceptions, log entries) are kept in
    :attr:`events` as they arrive; :meth:`errors` filters the error ones.
    """

    def __init__(self, executable: str, *, width: int = 1280, height: int = 900, timeout_s: float = 20.0) -> None:
        self.timeout_s = timeout_s
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        self._next_id = 0
        self._profile = tempfile.TemporaryDirectory(prefix="ihc-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        profile = Path(self._profile.name)
        cmd = [executable, *_FLAGS, f"--user-data-dir={profile / 'data'}", f"--window-size={width},{height}", "about:blank"]
        env = {**os.environ, "HOME": os.environ.get("HOME") or str(profile)}  # Chromium exits without a HOME
        self._log = open(profile / "stderr.txt", "w+b")  # noqa: SIM115 - closed in close()
        def as_fds_3_and_4() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        try:
            # close_fds=False keeps 3 and 4; every other descriptor of this process is close-on-exec.
            self._proc = subprocess.Popen(
                cmd,
                close_fds=False,
                preexec_fn=as_fds_3_and_4,  # noqa: PLW1509 - no threads start Chromium
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=env,
            )
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)  # fmt: skip
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- protocol

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        """Send one command and wait for its answer; events met meanwhile go to :attr:`events`."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data) :]
        except OSError as err:
            raise BrowserError(f"{method}: the browser is gone ({err})") from err
        reply = self._read_until(lambda m: m.get("id") == self._next_id, method)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method: str) -> dict[str, Any]:
        """Wait for the next event ``method`` of the page (events already received count)."""
        for ev in self.events:
            if ev.get("method") == method and not ev.get("_seen"):
                ev["_seen"] = True
                return ev
        ev = self._read_until(lambda m: m.get("method") == method, method)
        ev["_seen"] = True
        return ev

    def _read_until(self, match: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "method" in msg:
                    self.events.append(msg)
                if match(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{what}: no answer within {self.timeout_s:.0f} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    self._log.seek(0)
                    tail = self._log.read().decode(errors="replace").strip().splitlines()[-3:]
                    raise BrowserError(f"{what}: the browser exited (status {self._proc.wait(5)}): {' | '.join(tail)}")
                self._buf += chunk

    # ---------------------------------------------------------------- page

    def open(self, url: str) -> float:
        """Navigate to ``url`` and wait for its load event; returns seconds from navigation to load.

        Events of the previous page are dropped.
        """
        self.events.clear()  # errors() then speaks of this page only
        t0 = time.perf_counter()
        reply = self.send("Page.navigate", {"url": url}, session=True)
        if reply.get("errorText"):
            raise BrowserError(f"cannot open {url}: {reply['errorText']}")
        self.wait_event("Page.loadEventFired")
        return time.perf_counter() - t0

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page (JSON-serialisable results only)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression[:60]!r} threw: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A left mouse click at page coordinates (CSS px in the viewport)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}, session=True)  # fmt: skip

    def screenshot(self, path: Path) -> int:
        """Save a PNG of the viewport to ``path``; returns its size in bytes."""
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"])
        Path(path).write_bytes(data)
        return len(data)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads, CSP violations) so far."""
        self.send("Runtime.evaluate", {"expression": "0"}, session=True)  # flush events already queued
        out = []
        for ev in self.events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        return out

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the browser (politely, then by force) and remove its profile."""
        try:
            if self._proc.poll() is None:
                try:
                    os.write(self._to_browser, json.dumps({"id": -1, "method": "Browser.close"}).encode() + b"\0")
                except OSError:
                    pass
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshot", type=Path)
    args = ap.parse_args(argv)
    exe = find_chromium()
    if exe is None:
        print("no chromium found (install it, or set CHROMIUM)", file=sys.stderr)
        return 2
    with Chromium(exe) as browser:
        seconds = browser.open(args.html.resolve().as_uri())
        print(f"loaded in {seconds:.3f} s")
        if args.screenshot:
            print(f"screenshot {browser.screenshot(args.screenshot)} bytes -> {args.screenshot}")
        errors = browser.errors()
        for e in errors:
            print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
