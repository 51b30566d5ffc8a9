"""Logging set-up: the one place structlog (and the standard library's logging) is configured.

Owns: `configure_logging()` and `LogOutput`, the writer every log line goes through. JSON lines
on stdout for journald, pretty output on a terminal; every line has `event` (snake_case, past
tense), `level` and an ISO UTC `timestamp`, plus the context bound by the caller (`device=` per
device). Standard-library records (pyudev, prometheus_client) become structlog lines too.

Never does: let a log line cost a count. Logging is the least important thing the daemon does:
a stdout that breaks (journald restarted, a closed pipe) or stops reading (a full pipe) makes
the line be dropped and counted (`headsetd_log_errors_total`), and the next line tries again;
nothing blocks the reader loop and nothing raises into it. Never logs audio (there is none to
log: headsetd handles levels only) or device strings that were not sanitised at discovery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
from typing import TextIO

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogOutput:
    """A file-like sink for structlog's WriteLogger that never raises and never blocks on a
    pipe or socket: a line that cannot be written whole is dropped and counted."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._errors = 0
        self._fd: int | None = None
        try:
            fd = stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, AttributeError):
            return  # not a real file (a test's StringIO): written as a stream
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            # journald's stream socket, or a pipe: a reader that stops must not stop us.
            os.set_blocking(fd, False)
            self._fd = fd

    @property
    def errors(self) -> int:
        return self._errors

    def write(self, text: str) -> None:
        with self._lock:
            try:
                if self._fd is None:
                    self._stream.write(text)
                    self._stream.flush()
                    return
                data = text.encode("utf-8", errors="replace")
                while data:
                    written = os.write(self._fd, data)
                    data = data[written:]
            except (OSError, ValueError):
                # EPIPE (reader gone), EAGAIN (reader stalled), EIO, a closed stream: a partly
                # written line ends where it was cut, the next one starts on a line of its own.
                self._errors += 1
                if self._fd is not None:
                    with contextlib.suppress(OSError):
                        os.write(self._fd, b"\n")

    def flush(self) -> None:
        """Every write is flushed as it is made."""


class _ToStructlog(logging.Handler):
    """Standard-library records (pyudev, prometheus_client) as structlog lines."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = structlog.get_logger(record.name)
        method = logger.error if record.levelno >= logging.ERROR else logger.warning
        method("library_logged", logger=record.name, message=record.getMessage())


def configure_logging(
    fmt: str = "auto", level: str = "info", stream: TextIO | None = None
) -> LogOutput:
    """Configure structlog for the process (`fmt`: auto, json or console); returns the output,
    whose `errors` count the lines that could not be written."""
    out = stream if stream is not None else sys.stdout
    output = LogOutput(out)
    pretty = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=output),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers[:] = [_ToStructlog()]
    root.setLevel(logging.WARNING)
    return output


def set_level(level: str) -> None:
    """Change the level of a running daemon's log (a reload); the rest stays as configured."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]))
