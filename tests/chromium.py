"""Headless Chromium for the report tests, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``), so that no driver, WebSocket client or browser download is
needed: Debian's ``chromium`` package and the standard library are enough.

The browser reads commands on its fd 3 and writes replies and events on its fd 4, one
JSON message each, ended by a NUL byte.
"""

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EXECUTABLE = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)

FLAGS = (
    "--headless",
    "--no-sandbox",  # as root, as CI runs
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No host name resolves, so that a request the offline emulation let through fails too.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """The browser exited, timed out or answered a command with an error."""


@dataclass
class PageLog:
    """What a page did while it loaded: its console errors and the URLs it requested."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def record(self, event: dict) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            texts = (a.get("value", a.get("description", "")) for a in params["args"])
            self.errors.append(" ".join(map(str, texts)))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['text']} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])


class Chromium:
    """A headless Chromium with a fresh profile, closed on ``with`` exit."""

    def __init__(self, executable: str, *, timeout: float = 30):
        self.timeout = timeout
        self._resources = contextlib.ExitStack()
        profile = self._resources.enter_context(
            tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        )
        # What Chromium prints (D-Bus complaints, mostly), kept for the message if it dies.
        self._output = Path(profile, "output.log")
        output = os.open(self._output, os.O_WRONLY | os.O_CREAT)
        self._resources.callback(os.close, output)
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        self._resources.callback(os.close, self._commands)
        self._resources.callback(os.close, self._replies)

        def on_fds_3_and_4():
            # Copies first, so that neither end is overwritten while the other still sits
            # on 3 or 4; dup2 onto the same number keeps close-on-exec, hence set_inheritable.
            read_end, write_end = os.dup(commands_read), os.dup(replies_write)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        try:
            self.process = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                close_fds=False,  # the pipes' other ends are not inheritable; 3 and 4 are
                preexec_fn=on_fds_3_and_4,
            )
        except BaseException:
            self._resources.close()
            raise
        finally:
            os.close(commands_read)
            os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._resources:
            if self.process.poll() is None:
                with contextlib.suppress(BrowserError, OSError):
                    self.call("Browser.close")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(time.monotonic() + self.timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for_event(self, method: str, session: str | None = None) -> dict:
        """The first event ``method`` of ``session``, kept or yet to come."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._replies], [], [], remaining)[0]:
                raise BrowserError(f"no answer from Chromium in {self.timeout} s")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                output = self._output.read_text(errors="replace")[-2000:]
                raise BrowserError(f"Chromium exited ({self.process.wait()}):\n{output}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


def open_offline(browser: Chromium, url: str, *, viewport: tuple[int, int] | None = None) -> str:
    """Open ``url`` in a new tab with the network emulated off; the tab's session, once
    the page has fired its load event.

    ``viewport``, (width, height) in CSS pixels, lays the page out as in a window of that
    size (a scale of 1, not a phone's) instead of headless Chromium's default window.
    """
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session)
    if viewport:
        width, height = viewport
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
    browser.call(
        "Network.emulateNetworkConditions",
        session,
        offline=True,
        latency=0,
        downloadThroughput=-1,
        uploadThroughput=-1,
    )
    browser.call("Page.navigate", session, url=url)
    browser.wait_for_event("Page.loadEventFired", session)
    return session


def page_log(browser: Chromium, session: str) -> PageLog:
    """What the tab of ``session`` has logged and requested so far."""
    log = PageLog()
    for event in browser.events:
        if event.get("sessionId") == session and "method" in event:
            log.record(event)
    return log


def evaluate(browser: Chromium, session: str, expression: str):
    """The JSON value of a JavaScript expression in the tab; promises are awaited."""
    result = browser.call(
        "Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True
    )
    if "exceptionDetails" in result:
        raise BrowserError(f"{expression!r} threw {result['exceptionDetails']}")
    return result["result"].get("value")


def poll(browser: Chromium, session: str, expression: str, *, timeout: float = 20):
    """Evaluate ``expression`` until it is truthy or ``timeout`` runs out; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := evaluate(browser, session, expression)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def click(browser: Chromium, session: str, x: float, y: float) -> None:
    """A left click at (``x``, ``y``), in CSS pixels from the viewport's top left corner.

    The browser's own input, as a user's hand gives it: a page sees trusted events, with
    their default actions, which an event made in JavaScript would lack.
    """
    for kind in ("mousePressed", "mouseReleased"):
        browser.call(
            "Input.dispatchMouseEvent", session, type=kind, x=x, y=y, button="left", clickCount=1
        )


# Windows' virtual key codes, which Chromium's key events need besides the key's name.
KEY_CODES = {"Enter": 13, "Escape": 27, "ArrowLeft": 37, "ArrowRight": 39}


def press(browser: Chromium, session: str, key: str) -> None:
    """Press and release ``key`` (a name of ``KEY_CODES``), as the keyboard would: a
    trusted event, such as the Escape that closes a modal dialog natively."""
    code = KEY_CODES[key]
    for kind in ("rawKeyDown", "keyUp"):
        browser.call(
            "Input.dispatchKeyEvent",
            session,
            type=kind,
            key=key,
            code=key,
            windowsVirtualKeyCode=code,
            nativeVirtualKeyCode=code,
        )
