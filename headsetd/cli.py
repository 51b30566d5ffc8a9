"""The command line: `headsetd run | list | inspect | replay`, and the only place that wires
objects together (config, clock, discovery, daemon).

Never does: hold logic that a test of the parts would miss; each command is a few lines over
the modules that own the work. Errors the user can fix (a bad file, config or address) print
one line to stderr and exit 2; nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from headsetd import __version__
from headsetd.clock import MonotonicClock
from headsetd.config import ConfigError, load_config, parse_listen
from headsetd.discovery import Discovery, PartAdded, ReplayDiscovery, UdevDiscovery
from headsetd.events import Event, event_fields
from headsetd.fleet import DeviceRecord
from headsetd.hid.decoder import has_telephony_inputs
from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor
from headsetd.hid.recording import Recording, RecordingError
from headsetd.identity import hex4
from headsetd.logs import configure_logging


class UsageError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headsetd", description="Headset telemetry for Prometheus: USB/HID headsets."
    )
    parser.add_argument("--version", action="version", version=f"headsetd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the daemon: watch headsets, serve /metrics")
    run.add_argument("--config", help="TOML configuration file")
    run.add_argument("--listen", help="HOST:PORT for /metrics (overrides the config)")
    run.add_argument(
        "--replay",
        nargs="+",
        metavar="FILE",
        help="hid-recorder files that stand in for plugged devices (no hardware needed)",
    )
    run.add_argument("--speed", type=float, default=1.0, help="replay speed factor")
    run.add_argument("--loop", action="store_true", help="replug each replayed device at its end")
    run.add_argument("--log-format", choices=("auto", "json", "console"))

    lst = sub.add_parser("list", help="list the telephony HID devices plugged in now")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--all", action="store_true", help="also HID devices headsetd ignores")

    inspect = sub.add_parser("inspect", help="decode a report descriptor")
    inspect.add_argument(
        "file", help="hid-recorder file, raw descriptor or sysfs report_descriptor"
    )
    inspect.add_argument("--json", action="store_true")

    replay = sub.add_parser("replay", help="run a recording through the decoder and state machine")
    replay.add_argument("file", help="hid-recorder file")
    replay.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "list":
            return _list(args)
        if args.command == "inspect":
            return _inspect(args)
        return _replay(args)
    except (UsageError, ConfigError, RecordingError, DescriptorError) as exc:
        print(f"headsetd: {exc}", file=sys.stderr)
        return 2


def _load(path: str) -> tuple[Recording, Any]:
    recording = Recording.load(path)
    try:
        return recording, parse_report_descriptor(recording.descriptor)
    except DescriptorError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    from headsetd.daemon import Daemon  # noqa: PLC0415 - keeps `inspect`/`replay` start-up light

    config = load_config(args.config)
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides["listen"] = parse_listen(args.listen)
    if args.log_format:
        overrides["log_format"] = args.log_format
    config = replace(config, **overrides)
    configure_logging(config.log_format, config.log_level)
    clock = MonotonicClock()
    discovery: Discovery
    if args.replay:
        if args.speed <= 0:
            raise UsageError("--speed must be positive")
        recordings = [_load(path)[0] for path in args.replay]
        discovery = ReplayDiscovery(recordings, args.speed, args.loop)
    else:
        discovery = UdevDiscovery()
    try:
        daemon = Daemon(config, discovery, clock)
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.listen}: {exc.strerror}") from exc
    daemon.run_until_signalled()
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for change in UdevDiscovery().scan():
        if not isinstance(change, PartAdded):
            continue
        identity, hid = change.device, change.hid
        try:
            telephony = has_telephony_inputs(parse_report_descriptor(hid.descriptor))
        except DescriptorError:
            telephony = False
        if not (telephony or args.all):
            continue
        rows.append(
            {
                "device": identity.device_id,
                "path": hid.node,
                "vendor_id": hex4(identity.vendor_id),
                "product_id": hex4(identity.product_id),
                "manufacturer": identity.manufacturer,
                "product": identity.product,
                "serial": identity.serial,
                "firmware": identity.firmware,
                "port": identity.port,
                "interface": hid.interface,
                "telephony": telephony,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no telephony HID devices found")
    for row in [] if args.json else rows:
        print(f"{row['device']:32} {row['path']:14} {row['manufacturer']} {row['product']}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from headsetd.inspect import describe, render_table  # noqa: PLC0415

    recording, descriptor = _load(args.file)
    described = describe(recording, descriptor)
    print(json.dumps(described, indent=2) if args.json else render_table(described))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from headsetd.replay import replay  # noqa: PLC0415

    recording, _descriptor = _load(args.file)

    def emit(record: DeviceRecord, events: Sequence[Event], t: float) -> None:
        for event in events:
            fields = event_fields(event)
            line = {"event": fields.pop("event"), "device": record.device_id, "t": round(t, 6)}
            if args.json:
                print(json.dumps({**line, **fields}))
            else:
                rest = " ".join(f"{k}={json.dumps(v)}" for k, v in fields.items())
                print(f"{t:10.3f}  {line['event']:20} {rest}".rstrip())

    replay([recording], emit)
    return 0
