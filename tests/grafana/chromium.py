"""Debian's headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, replies and events on fd 4, NUL-separated JSON), with no client library:
load a page, wait for it to say it is done, collect every console error, uncaught exception
and failed load, read a value from the page, and take a full-page screenshot.

Owns: the browser process (a fresh --user-data-dir, the flags known to work on this machine
kind) and its pipe. Never does: reach the network (background networking is off; the pages it
loads are on loopback).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


@dataclass(slots=True)
class Page:
    """One tab: commands go through the browser's pipe with this session id."""

    browser: Browser
    session: str
    problems: list[str] = field(default_factory=list)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll a JavaScript expression until it is truthy; its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still falsy after {timeout:.0f}s")
            self.browser.pump(0.2)

    def screenshot(self, width: int) -> bytes:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], commands: int, replies: int) -> None:
        self.process = process
        self.commands = commands
        self.replies = replies
        self.buffer = b""
        self.next_id = 0
        self.pages: dict[str, Page] = {}

    def send(
        self, method: str, params: dict[str, Any], session: str = "", timeout: float = 30
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self.pump(max(0.0, deadline - time.monotonic())):
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return dict(reply["result"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {method} within {timeout:.0f}s")

    def pump(self, timeout: float) -> list[dict[str, Any]]:
        """Messages that arrive within `timeout`; events are filed with their page."""
        ready, _, _ = select.select([self.replies], [], [], timeout)
        if ready:
            chunk = os.read(self.replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited ({self.process.poll()})")
            self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\0")
        messages = [json.loads(raw) for raw in complete]
        for message in messages:
            page = self.pages.get(message.get("sessionId", ""))
            if page is not None and "method" in message:
                problem = _problem(message["method"], message["params"])
                if problem:
                    page.problems.append(problem)
        return messages

    def open(self, url: str, width: int, height: int) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        self.pages[page.session] = page
        for domain in ("Runtime", "Log", "Page"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        page.send("Page.navigate", url=url)
        return page


def _problem(method: str, params: dict[str, Any]) -> str:
    """The console error, uncaught exception or failed load an event reports ("" if none)."""
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        return "console.error: " + " ".join(
            str(arg.get("value", arg.get("description", ""))) for arg in params["args"]
        )
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return "exception: " + str(details.get("exception", {}).get("description", details["text"]))
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        return f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".rstrip()
    return ""


def _high_fd(fd: int) -> int:
    """The same pipe end at a number above 4, so the shell's 3<& and 4>& cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


@contextmanager
def chromium(executable: str) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, ended (and its profile removed) on exit."""
    to_browser_read, to_browser_write = (_high_fd(fd) for fd in os.pipe())
    from_browser_read, from_browser_write = (_high_fd(fd) for fd in os.pipe())
    with tempfile.TemporaryDirectory(prefix="headsetd-chromium-") as profile:
        # bash (dash takes one-digit fds only) puts the pipe ends on fds 3 and 4, where
        # --remote-debugging-pipe expects
        # them, without a preexec_fn, which is unsafe in a process with threads.
        command = (
            f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write} '
            f"{to_browser_read}<&- {from_browser_write}>&-"
        )
        process = subprocess.Popen(
            ["/bin/bash", "-c", command, executable, *FLAGS, f"--user-data-dir={profile}"],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        browser = Browser(process, to_browser_write, from_browser_read)
        try:
            yield browser
        finally:
            try:
                browser.send("Browser.close", {}, timeout=5)
            except (OSError, RuntimeError, TimeoutError):
                process.kill()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_browser_write)
            os.close(from_browser_read)
