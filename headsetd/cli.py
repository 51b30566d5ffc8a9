"""The command line, and the only place that wires objects together (config, clock, discovery,
daemon).

Owns: the commands (`run`, `list`, `status`, `check-config`, `inspect`, `replay`), their
options and help, and how their results are printed. Each command is a few lines over the
modules that own the work.

Never does: hold logic that a test of the parts would miss, or print a traceback for input the
user can fix: a bad file, config, address or option prints one line to stderr and exits 2. A
closed stdout (`headsetd inspect x | head`) ends a command quietly. Imports what each command
needs when it runs: `udev-probe`, which udev runs for every hidraw node that appears, costs
the interpreter and the descriptor parser, nothing more.
"""

from __future__ import annotations

import argparse
import base64
import gc
import importlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from headsetd import __version__

if TYPE_CHECKING:
    from headsetd.config import Config
    from headsetd.daemon import Daemon
    from headsetd.discovery import ReplayedDevice
    from headsetd.events import Event
    from headsetd.fleet import DeviceRecord
    from headsetd.hid.recording import Recording

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
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth, in the YAML Prometheus and node_exporter take "
        "(default: the config's [web] config_file, none: plain HTTP)",
    )
    run.add_argument(
        "--no-audio",
        action="store_true",
        help="do not watch the audio server: no microphone metrics (the system unit, which has "
        "no user session; default: the config's [audio] enabled, true)",
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

    status = sub.add_parser(
        "status",
        help="what a running daemon sees now (devices, kind, hook, mute), from its /status",
        formatter_class=formatter,
    )
    status.set_defaults(func=_status)
    status.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's configuration: where it listens (default: none, port 10481)",
    )
    status.add_argument("--url", help="the daemon's /status URL (default: from --config)")
    status.add_argument("--json", action="store_true", help="the daemon's JSON as it is")
    status.add_argument(
        "--insecure",
        action="store_true",
        help="accept the daemon's TLS certificate without checking it (it is this machine's)",
    )

    check = sub.add_parser(
        "check-config",
        help="check a configuration file (and its web config) without starting",
        formatter_class=formatter,
    )
    check.set_defaults(func=_check_config)
    check.add_argument("file", help="TOML configuration file")

    for name, (_, help_text) in _OWN_PARSERS.items():
        sub.add_parser(name, help=help_text, add_help=False)

    replay = sub.add_parser(
        "replay",
        help="the events a recording makes, through the daemon's own loop",
        formatter_class=formatter,
    )
    replay.set_defaults(func=_replay)
    replay.add_argument("file", help="hid-recorder file")
    replay.add_argument("--json", action="store_true", help="one JSON object per event")
    return parser


# Commands with a parser of their own, dispatched before anything else is imported.
_OWN_PARSERS = {
    "udev-probe": ("headsetd.udev_probe", "decide from a hidraw node's report descriptor whether "
                   "the udev rule grants headsetd read access (udev runs it)"),
    "install-units": ("headsetd.install_units", "place the systemd units, sysusers.d file and "
                      "udev rule (--root DIR, --user)"),
    "demo": ("headsetd.demo", "a simulated fleet with Prometheus and Alertmanager on loopback "
             "(in a checkout): alerts within a minute"),
}  # fmt: skip


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors bad input raises: printed as one line, exit status 2."""
    from headsetd.config import ConfigError  # noqa: PLC0415
    from headsetd.hid.descriptor import DescriptorError  # noqa: PLC0415
    from headsetd.hid.recording import RecordingError  # noqa: PLC0415
    from headsetd.usb.descriptors import UsbDescriptorError  # noqa: PLC0415

    return (UsageError, ConfigError, RecordingError, DescriptorError, UsbDescriptorError)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] and args_list[0] in _OWN_PARSERS:
        module = importlib.import_module(_OWN_PARSERS[args_list[0]][0])
        command_main: Callable[[Sequence[str]], int] = module.main
        return command_main(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except _user_errors() as exc:
        print(f"headsetd: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush of
        # stdout from failing again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _recording(path: str) -> Recording:
    from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor  # noqa: PLC0415
    from headsetd.hid.recording import Recording  # noqa: PLC0415

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
    from headsetd.discovery import ReplayedDevice  # noqa: PLC0415
    from headsetd.usb.descriptors import UsbDescriptorError, parse_usb_descriptors  # noqa: PLC0415

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


class _Stopped(Exception):
    """SIGTERM or SIGINT before the daemon's loop runs (loading recordings, binding)."""


def _stop_early(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _run(args: argparse.Namespace) -> int:
    # A stop asked for while recordings load (seconds for a day's recording) ends the command
    # at once, cleanly; the daemon installs its own handlers when its loop starts.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop_early)
    try:
        daemon = _daemon(args)
    except _Stopped:
        return 0
    # What is loaded by now (modules, classes, the daemon's parts) lives as long as the
    # process: keep it out of every later collection, and out of the one at exit, which would
    # otherwise take most of the time from SIGTERM to exit. Before the first device is added,
    # so a device's objects stay collectable after its unplug.
    gc.freeze()
    daemon.run_until_signalled()
    return 0


def _daemon(args: argparse.Namespace) -> Daemon:
    import structlog  # noqa: PLC0415

    from headsetd.clock import MonotonicClock  # noqa: PLC0415 - keeps other commands light
    from headsetd.config import load_config, parse_listen  # noqa: PLC0415
    from headsetd.daemon import Daemon  # noqa: PLC0415
    from headsetd.discovery import ReplayDiscovery, UdevDiscovery  # noqa: PLC0415
    from headsetd.logs import configure_logging  # noqa: PLC0415

    if not args.replay and (args.speed is not None or args.loop):
        raise UsageError("--speed and --loop go with --replay")
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides["listen"] = parse_listen(args.listen)
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.web_config_file:
        overrides["web_config_file"] = args.web_config_file

    def load() -> Config:  # the file again (a reload), with the command line's overrides
        config = replace(load_config(args.config), **overrides)
        if args.no_audio:
            config = replace(config, audio=replace(config.audio, enabled=False))
        return config

    config = load()
    output = configure_logging(config.log_format, config.log_level)
    discovery: ReplayDiscovery | UdevDiscovery
    if args.replay:
        structlog.get_logger("headsetd").info("replay_loading", files=len(args.replay))
        devices = [replayed_device(argument) for argument in args.replay]
        discovery = ReplayDiscovery(devices, args.speed or 1.0, args.loop)
    else:
        discovery = UdevDiscovery()
    try:
        return Daemon(
            config,
            discovery,
            MonotonicClock(),
            reload=load if args.config else None,
            log_output=output,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.listen}: {exc.strerror}") from exc


def _check_config(args: argparse.Namespace) -> int:
    from headsetd.config import load_config  # noqa: PLC0415
    from headsetd.webconfig import load_web_config  # noqa: PLC0415

    config = load_config(args.file)
    web = load_web_config(config.web_config_file)
    print(f"{args.file}: OK")
    print(f"  workstation: {config.workstation_labels}")
    print(f"  listen: {config.listen}" + (" (TLS)" if web.tls else ""))
    if web.users:
        print(f"  basic auth: {len(web.users)} user(s)")
    approved = "not judged" if config.policy is None else ", ".join(config.policy.approved)
    print(f"  approved models: {approved or 'none'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    import ssl  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from headsetd.config import Listen, load_config  # noqa: PLC0415
    from headsetd.status import render_status  # noqa: PLC0415
    from headsetd.webconfig import load_web_config  # noqa: PLC0415

    url = args.url
    context: ssl.SSLContext | None = None
    if url is None:
        config = load_config(args.config)
        # A daemon listening on every address answers on loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.listen.host, config.listen.host)  # noqa: S104
        scheme = "https" if load_web_config(config.web_config_file).tls else "http"
        url = f"{scheme}://{Listen(host, config.listen.port)}/status"
    if url.startswith("https") and args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url)  # noqa: S310 - the user's own daemon
    user, password = os.environ.get("HEADSETD_USER"), os.environ.get("HEADSETD_PASSWORD")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            status = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {url}: {exc} (is headsetd running?)") from exc
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return 0


def _list(args: argparse.Namespace) -> int:
    from headsetd.config import load_config  # noqa: PLC0415
    from headsetd.devices import survey  # noqa: PLC0415
    from headsetd.discovery import UdevDiscovery  # noqa: PLC0415
    from headsetd.events import facts_fields  # noqa: PLC0415
    from headsetd.identity import identity_fields  # noqa: PLC0415
    from headsetd.policy import judge  # noqa: PLC0415

    policy = load_config(args.config).policy if args.config else None
    rows = []
    for device in survey(UdevDiscovery().scan()):
        identity = device.identity
        readable = all(os.access(node, os.R_OK) for node in device.read_nodes)
        row: dict[str, Any] = {
            **identity_fields(identity),
            **facts_fields(device.facts),
            "approved": judge(policy, identity.vendor_id, identity.product_id),
            "read": list(device.read_nodes),
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
    from headsetd.inspect_usb import is_usb_descriptors  # noqa: PLC0415

    raw = _read(args.file)
    if is_usb_descriptors(raw):
        from headsetd.classify import classify  # noqa: PLC0415
        from headsetd.inspect_usb import describe as describe_usb  # noqa: PLC0415
        from headsetd.inspect_usb import render_table as usb_table  # noqa: PLC0415
        from headsetd.usb.descriptors import parse_usb_descriptors  # noqa: PLC0415

        usb = parse_usb_descriptors(raw)
        classification = classify(usb, [])
        if args.json:
            print(json.dumps(describe_usb(usb, classification), indent=2))
        else:
            print(usb_table(usb, classification))
        return 0
    from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor  # noqa: PLC0415
    from headsetd.hid.recording import Recording  # noqa: PLC0415
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
    from headsetd.events import event_fields  # noqa: PLC0415
    from headsetd.logs import configure_logging  # noqa: PLC0415
    from headsetd.replay import replay  # noqa: PLC0415

    recording = _recording(args.file)
    # Events are the output (stdout); what the daemon would log beside them (a device it
    # ignores, and why) goes to stderr.
    configure_logging("console" if sys.stderr.isatty() else "json", "info", sys.stderr)

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
