"""The one vocabulary of errors headsetd counts: `ErrorKind`.

Owns: every error kind, by the value its `kind` label carries. It sits below everything that
meets errors (the hardware boundary, discovery, the fleet, the collector), so they all name
errors the same way. Never does: decide what is an error (the modules that meet them do).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Every counted error, as its `kind` label. Device errors (`headsetd_device_errors_total`)
    are the first five; discovery errors (`headsetd_discovery_errors_total`) the last three."""

    READ = "read"  # a read failed for another reason than an unplug
    MALFORMED_REPORT = "malformed_report"  # unknown report ID, or a length the descriptor denies
    ACCESS_DENIED = "access_denied"  # the node exists but may not be opened (udev rule missing)
    OPEN = "open"  # the node exists but opening it failed otherwise
    INTERNAL = "internal"  # a headsetd bug met by one report or one device (logged with traceback)
    MALFORMED_DESCRIPTOR = "malformed_descriptor"  # a HID or USB descriptor that does not parse
    UNREADABLE = "unreadable"  # sysfs facts of a device could not be read


DEVICE_ERROR_KINDS = (
    ErrorKind.READ,
    ErrorKind.MALFORMED_REPORT,
    ErrorKind.ACCESS_DENIED,
    ErrorKind.OPEN,
    ErrorKind.INTERNAL,
)
DISCOVERY_ERROR_KINDS = (
    ErrorKind.MALFORMED_DESCRIPTOR,
    ErrorKind.UNREADABLE,
    ErrorKind.INTERNAL,
)
