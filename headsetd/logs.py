"""Logging set-up: the one place structlog (and the standard library's logging) is configured.

Owns: `configure_logging()`. JSON lines on stdout for journald, pretty output on a terminal;
every line has `event` (snake_case, past tense), `level` and an ISO UTC `timestamp`, plus the
context bound by the caller (`device=` per device). Never does: log audio data (there is none
to log: headsetd handles levels only) or device strings that were not sanitised at discovery.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog for the process. `fmt` is auto, json or console."""
    out = stream if stream is not None else sys.stdout
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
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        # WriteLogger flushes each line, so journald (and a test reading the pipe) sees
        # every event as it happens.
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # pyudev and prometheus_client log through the standard library: warnings go to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
