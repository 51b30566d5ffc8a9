"""The command line, and the only place that wires objects together (config, clock, discovery,
daemon).

Owns: the commands (`run`, `list`, `inspect`, `replay`), their options and help, and how their
results are printed. Each command is a few lines over the modules that own the work.

Never does: hold logic that a test of the parts would miss, or print a traceback for input the
user can fix: a bad file, config, address or option prints one line to stderr and exits 2. A
closed stdout (`headsetd inspect x | head`) ends a command quietly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from headsetd import __version__
from headsetd.config import ConfigError, load_config, parse_listen
from headsetd.discovery import Discovery, ReplayedDevice
from headsetd.events import Event, event_fields
from headsetd.fleet import DeviceRecord
from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor
from headsetd.hid.recording import Recording, RecordingError
from headsetd.identity import hex4
from headsetd.usb.descriptors import UsbDescriptorError

# What `list` says to do about a device headsetd cannot read.
FIX_UNREADABLE = (
    "install the udev rule that grants read access to telephony nodes "
    "(sudo headsetd install-units), then replug the device"
)


class UsageError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a finite number above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="headsetd",
        description="Headset telemetry for Prometheus: USB and HID headsets on a workstation.",
        formatter_class=formatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"headsetd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="the daemon: watch devices, serve /metrics", formatter_class=formatter
    )
    run.set_defaults(func=_run)
    run.add_argument("--config", metavar="FILE", help="TOML configuration file (default: none)")
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="where /metrics is served (default: the config's)"
    )
    run.add_argument(
        "--replay",
        nargs="+",
        metavar="FILE[+FILE]",
        help="devices made of files instead of hardware: a hid-recorder recording, a USB "
        "descriptors file (sysfs `descriptors` layout), or RECORDING+DESCRIPTORS for both",
    )
    run.add_argument("--speed", type=_speed, help="replay speed factor (default: 1)")
    run.add_argument(
        "--loop", action="store_true", help="replug each replayed device after its last report"
    )
    run.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        help="log format (default: the config's, auto: pretty on a terminal, else JSON)",
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="log level (default: the config's, info)",
    )

    lst = sub.add_parser(
        "list", help="the devices headsetd tracks, plugged in now", formatter_class=formatter
    )
    lst.set_defaults(func=_list)
    lst.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    lst.add_argument(
        "--config", metavar="FILE", help="TOML configuration whose policy judges the devices"
    )

    inspect = sub.add_parser(
        "inspect",
        help="what a device's descriptors say (HID report descriptor or USB descriptors)",
        formatter_class=formatter,
    )
    inspect.set_defaults(func=_inspect)
    inspect.add_argument(
        "file",
        help="hid-recorder file, raw report descriptor, sysfs report_descriptor, or a USB "
        "descriptors file (/sys/bus/usb/devices/<dev>/descriptors)",
    )
    inspect.add_argument("--json", action="store_true", help="JSON instead of a table")

    replay = sub.add_parser(
        "replay",
        help="the events a recording makes, through the daemon's own loop",
        formatter_class=formatter,
    )
    replay.set_defaults(func=_replay)
    replay.add_argument("file", help="hid-recorder file")
    replay.add_argument("--json", action="store_true", help="one JSON object per event")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except (UsageError, ConfigError, RecordingError, DescriptorError, UsbDescriptorError) as exc:
        print(f"headsetd: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush of
        # stdout from failing again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _recording(path: str) -> Recording:
    recording = Recording.load(path)
    try:
        parse_report_descriptor(recording.descriptor)
    except DescriptorError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    return recording


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc


def replayed_device(argument: str) -> ReplayedDevice:
    """One `--replay` argument: a recording, a USB descriptors file, or both joined by '+'.
    A USB descriptors file starts with its device descriptor (0x12 0x01); a recording or a raw
    report descriptor never does."""
    from headsetd.usb.descriptors import parse_usb_descriptors  # noqa: PLC0415

    recording: Recording | None = None
    usb: bytes | None = None
    for path in argument.split("+"):
        data = _read(path)
        if data[:2] == b"\x12\x01":
            if usb is not None:
                raise UsageError(f"{argument}: two USB descriptors files for one device")
            try:
                parse_usb_descriptors(data)
            except UsbDescriptorError as exc:
                raise UsageError(f"{path}: {exc}") from exc
            usb = data
        elif recording is not None:
            raise UsageError(f"{argument}: two recordings for one device")
        else:
            recording = _recording(path)
    return ReplayedDevice(Path(argument.split("+", maxsplit=1)[0]).stem, recording, usb)


def _run(args: argparse.Namespace) -> int:
    from headsetd.clock import MonotonicClock  # noqa: PLC0415 - keeps other commands light
    from headsetd.daemon import Daemon  # noqa: PLC0415
    from headsetd.discovery import ReplayDiscovery, UdevDiscovery  # noqa: PLC0415
    from headsetd.logs import configure_logging  # noqa: PLC0415

    if not args.replay and (args.speed is not None or args.loop):
        raise UsageError("--speed and --loop go with --replay")
    config = load_config(args.config)
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides["listen"] = parse_listen(args.listen)
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.log_level:
        overrides["log_level"] = args.log_level
    config = replace(config, **overrides)
    discovery: Discovery
    if args.replay:
        devices = [replayed_device(argument) for argument in args.replay]
        discovery = ReplayDiscovery(devices, args.speed or 1.0, args.loop)
    else:
        discovery = UdevDiscovery()
    configure_logging(config.log_format, config.log_level)
    try:
        daemon = Daemon(config, discovery, MonotonicClock())
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.listen}: {exc.strerror}") from exc
    daemon.run_until_signalled()
    return 0


def _list(args: argparse.Namespace) -> int:
    from headsetd.devices import survey  # noqa: PLC0415
    from headsetd.discovery import UdevDiscovery  # noqa: PLC0415

    policy = load_config(args.config).policy if args.config else None
    rows = []
    for device in survey(UdevDiscovery().scan()):
        identity, facts = device.identity, device.facts
        c = facts.classification
        readable = all(os.access(node, os.R_OK) for node in device.read_nodes)
        row: dict[str, Any] = {
            "device": identity.device_id,
            "vendor_id": hex4(identity.vendor_id),
            "product_id": hex4(identity.product_id),
            "manufacturer": identity.manufacturer,
            "product": identity.product,
            "serial": identity.serial,
            "firmware": identity.firmware,
            "port": identity.port,
            "kind": c.kind.value,
            "has_microphone": c.has_microphone,
            "has_speaker": c.has_speaker,
            "call_control": c.call_control,
            "uac": c.uac,
            "approved": (
                None if policy is None else policy.approves(identity.vendor_id, identity.product_id)
            ),
            "hidraw": list(facts.hidraw),
            "read": list(device.read_nodes),
            "sound": list(facts.sound),
            "controls": [control.value for control in facts.controls],
            "readable": readable,
        }
        if not readable:
            row["fix"] = FIX_UNREADABLE
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no headsets, speakerphones or other audio devices found")
    for row in rows:
        flags = [row["kind"]]
        flags += ["call control"] if row["call_control"] else []
        flags += [] if row["readable"] else ["NOT READABLE: " + FIX_UNREADABLE]
        flags += [] if row["approved"] is not False else ["not approved"]
        print(f"{row['device']:32} {row['product'] or '(no name)'}  [{', '.join(flags)}]")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from headsetd.usb.describe import is_usb_descriptors  # noqa: PLC0415

    raw = _read(args.file)
    if is_usb_descriptors(raw):
        from headsetd.classify import classify  # noqa: PLC0415
        from headsetd.usb.describe import describe as describe_usb  # noqa: PLC0415
        from headsetd.usb.describe import render_table as usb_table  # noqa: PLC0415
        from headsetd.usb.descriptors import parse_usb_descriptors  # noqa: PLC0415

        usb = parse_usb_descriptors(raw)
        classification = classify(usb, [])
        if args.json:
            print(json.dumps(describe_usb(usb, classification), indent=2))
        else:
            print(usb_table(usb, classification))
        return 0
    from headsetd.inspect import describe, render_table  # noqa: PLC0415

    recording = Recording.load(args.file)
    try:
        descriptor = parse_report_descriptor(recording.descriptor)
    except DescriptorError as exc:
        raise UsageError(f"{args.file}: {exc}") from exc
    described = describe(recording, descriptor)
    print(json.dumps(described, indent=2) if args.json else render_table(described))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from headsetd.replay import replay  # noqa: PLC0415

    recording = _recording(args.file)

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
