"""`headsetd udev-probe SYSPATH`: the udev helper that decides which hidraw nodes headsetd may read.

70-headsetd.rules runs it as `IMPORT{program}="headsetd udev-probe %S%p"` on every hidraw add
or change. It reads the node's report descriptor from sysfs (`SYSPATH/device/report_descriptor`)
and prints `HEADSETD_TELEPHONY=1` when the device is one headsetd watches (a Telephony
application collection with inputs, `has_telephony_inputs`) and cannot type (no keyboard or
keypad application collection in the same descriptor); the rule then grants read access.

Owns: that decision, `main(argv) -> int`. Never does: open the device node, print anything for
a node it does not grant (a missing, unreadable, oversized or malformed descriptor included),
exit non-zero or write to stderr (udev would log every keyboard and mouse plugged in), or import
more than the descriptor parser and decoder: udev runs it on every hidraw node that appears.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from headsetd.hid.decoder import has_telephony_inputs
from headsetd.hid.descriptor import MAX_DESCRIPTOR_BYTES, ReportDescriptor, parse_report_descriptor

PROPERTY = "HEADSETD_TELEPHONY"


def grants_read_access(descriptor: ReportDescriptor) -> bool:
    """True for a telephony device that cannot type: the nodes the udev rule opens up, the
    devices the daemon watches (`has_telephony_inputs` excludes keyboards and keypads)."""
    return has_telephony_inputs(descriptor)


def probe(syspath: Path) -> bool:
    """Whether the hidraw node at `syspath` (e.g. /sys/devices/.../hidraw/hidraw3) is granted."""
    try:
        with (syspath / "device" / "report_descriptor").open("rb") as f:
            raw = f.read(MAX_DESCRIPTOR_BYTES + 1)
        return grants_read_access(parse_report_descriptor(raw))
    except Exception:  # any failure denies access, quietly (see the docstring)
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and probe(Path(args[0])):
        print(f"{PROPERTY}=1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
