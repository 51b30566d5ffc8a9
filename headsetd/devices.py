"""The device lifecycle: parts in, devices admitted, reports read, events counted and told.

Owns: `Devices`, which runs on the reader loop's thread and turns discovery's part changes
into tracked devices: it parses and compiles each HID interface's report descriptor (through
`DecoderCache`, so a replug costs a dictionary lookup), decides which devices are watched,
opens their sources, feeds each report through `decode_and_step`, and hands every event to the
fleet and then to a sink (the log, or `headsetd replay`'s printer). Also `LogSink`, what the
log says about devices.

Never does: block, sleep or hold a thread (sources are loop descriptors and timers), write to a
device, or let one device's failure touch another's: a bug met by one report is counted as
`internal` for that device and reading goes on; a bug met by one part change is counted as a
discovery error. Keyboards, mice and security keys are never opened: only a HID interface with
a Telephony collection that has inputs is read.
"""

from __future__ import annotations

import os
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog

from headsetd.discovery import Discovery, DiscoveryFailed, PartAdded, PartChange, PartRemoved
from headsetd.events import (
    DeviceConnected,
    DeviceDisconnected,
    ErrorKind,
    Event,
    ReadFailed,
    event_fields,
    is_warning,
)
from headsetd.fleet import DeviceRecord, Fleet
from headsetd.hid.decoder import TelephonyDecoder, has_telephony_inputs
from headsetd.hid.descriptor import DescriptorError, ReportDescriptor, parse_report_descriptor
from headsetd.hid.source import DeviceGone, HidSource, TransportError
from headsetd.identity import DeviceIdentity, HidInterface, hex4
from headsetd.loop import ReaderLoop
from headsetd.session import HeadsetState, decode_and_step

log = structlog.get_logger("headsetd")

# Where a device's events go after the fleet has counted them: (record after them, events, now).
EventSink = Callable[[DeviceRecord, Sequence[Event], float], None]

DECODER_CACHE_SIZE = 64  # distinct report descriptors kept compiled (a desk has a handful)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A report descriptor, parsed; its decoder when headsetd watches such a device."""

    descriptor: ReportDescriptor
    decoder: TelephonyDecoder | None


class DecoderCache:
    """Parsed descriptors and compiled decoders by descriptor bytes, least recently used first
    out. A flapping cable replugs the same descriptor: the second time is a lookup."""

    def __init__(self, size: int = DECODER_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Compiled | DescriptorError] = OrderedDict()

    def compile(self, descriptor: bytes) -> Compiled:
        """The compiled descriptor; raises DescriptorError (cached too) for a malformed one."""
        entry = self._entries.get(descriptor)
        if entry is None:
            try:
                parsed = parse_report_descriptor(descriptor)
                watched = has_telephony_inputs(parsed)
                entry = Compiled(parsed, TelephonyDecoder(parsed) if watched else None)
            except DescriptorError as exc:
                entry = exc
            self._entries[descriptor] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(descriptor)
        if isinstance(entry, DescriptorError):
            raise entry
        return entry


@dataclass(eq=False, slots=True)
class _Reader:
    """One watched HID interface: its decoder, its state, its source once open."""

    hid: HidInterface
    decoder: TelephonyDecoder
    state: HeadsetState = field(default_factory=HeadsetState)
    source: HidSource | None = None


@dataclass(eq=False, slots=True)
class _Device:
    identity: DeviceIdentity
    readers: dict[str, _Reader] = field(default_factory=dict)  # by node


class Devices:
    """Tracked devices by key; every method runs on the reader loop's thread."""

    def __init__(
        self,
        loop: ReaderLoop,
        discovery: Discovery,
        fleet: Fleet,
        sink: EventSink,
        decoders: DecoderCache | None = None,
    ) -> None:
        self._loop = loop
        self._discovery = discovery
        self._fleet = fleet
        self._sink = sink
        self._decoders = decoders or DecoderCache()
        self._devices: dict[str, _Device] = {}

    @property
    def count(self) -> int:
        return len(self._devices)

    def on_change(self, change: PartChange) -> None:
        """Discovery's callback. Never raises: a bug here would end hotplug for every device."""
        try:
            match change:
                case PartAdded():
                    self._add(change)
                case PartRemoved(device_key=device_key, part_key=part_key):
                    self._remove(device_key, part_key, "unplugged")
                case DiscoveryFailed(kind=kind, path=path, detail=detail):
                    self._fleet.count_discovery_error(kind)
                    log.warning("device_unreadable", path=path, error=detail)
        except Exception:  # see the docstring; counted and logged with its traceback
            self._fleet.count_discovery_error(ErrorKind.INTERNAL)
            log.exception("device_change_failed", change=repr(change)[:300])

    def stop(self, reason: str = "stopped") -> None:
        """Close every source; each device's unplug is counted (the counters are final)."""
        for key in list(self._devices):
            self._drop(key, reason)

    # --- admission ---------------------------------------------------------------------------

    def _add(self, change: PartAdded) -> None:
        hid = change.hid
        device = self._devices.get(change.device.key)
        if device is not None and hid.node in device.readers:
            return  # seen twice: the monitor and the start-up scan may both report a node
        try:
            compiled = self._decoders.compile(hid.descriptor)
        except DescriptorError as exc:
            self._fleet.count_discovery_error(ErrorKind.MALFORMED_DESCRIPTOR)
            log.warning("descriptor_rejected", path=hid.node, error=str(exc))
            return
        if compiled.decoder is None:
            log.debug("device_ignored", path=hid.node, reason="no telephony inputs")
            return
        reader = _Reader(hid, compiled.decoder)
        if device is None:
            device = self._devices[change.device.key] = _Device(self._unique(change.device))
            device.readers[hid.node] = reader
            record = self._fleet.connect(device.identity, compiled.decoder.controls, self._now())
            self._sink(record, [DeviceConnected()], self._now())
        else:
            device.readers[hid.node] = reader
        self._open(device, reader)

    def _unique(self, identity: DeviceIdentity) -> DeviceIdentity:
        """Two plugged devices with one id (a vendor that gives every unit the same serial)
        stay two devices: the later one's id gets its port's (or node's) name."""
        taken = {d.identity.device_id for d in self._devices.values()}
        if identity.device_id not in taken:
            return identity
        unique = replace(identity, id_suffix=f"~{os.path.basename(identity.port or identity.key)}")
        log.warning("device_id_collided", device=identity.device_id, renamed=unique.device_id)
        return unique

    def _open(self, device: _Device, reader: _Reader) -> None:
        try:
            source = self._discovery.open(reader.hid)
        except DeviceGone:
            self._remove(device.identity.key, reader.hid.node, "unplugged")
            return
        except TransportError as exc:
            # Plugged but unreadable (permissions, most often): a metric and a log line.
            self._emit(device, [ReadFailed(exc.kind, str(exc))])
            return
        reader.source = source
        source.attach(
            self._loop, partial(self._report, device, reader), partial(self._ended, device, reader)
        )

    # --- reading -----------------------------------------------------------------------------

    def _report(self, device: _Device, reader: _Reader, report: bytes) -> None:
        now = self._now()
        try:
            reader.state, events = decode_and_step(reader.decoder, reader.state, report, now)
        except Exception as exc:  # a bug met by one report must not end the device's reading
            detail = "".join(traceback.format_exception_only(exc)).strip()
            log.exception("report_failed", device=device.identity.device_id)
            events = [ReadFailed(ErrorKind.INTERNAL, f"{detail}; report {report[:64].hex()}")]
        if events:
            self._emit(device, events, now)

    def _ended(self, device: _Device, reader: _Reader, end: DeviceGone | TransportError) -> None:
        if isinstance(end, TransportError):
            self._emit(device, [ReadFailed(end.kind, str(end))])
            self._remove(device.identity.key, reader.hid.node, "read_failed")
        else:
            self._remove(device.identity.key, reader.hid.node, end.reason)

    def _emit(self, device: _Device, events: Sequence[Event], now: float | None = None) -> None:
        at = self._now() if now is None else now
        record = self._fleet.apply(device.identity.device_id, events, at)
        if record is not None:
            self._sink(record, events, at)

    # --- removal -----------------------------------------------------------------------------

    def _remove(self, device_key: str, part_key: str, reason: str) -> None:
        device = self._devices.get(device_key)
        if device is None:
            return
        reader = device.readers.pop(part_key, None)
        if reader is not None and reader.source is not None:
            reader.source.close()
        if not device.readers:
            self._drop(device_key, reason)

    def _drop(self, device_key: str, reason: str) -> None:
        device = self._devices.pop(device_key)
        for reader in device.readers.values():
            if reader.source is not None:
                reader.source.close()
        self._emit(device, [DeviceDisconnected(reason)])

    def _now(self) -> float:
        return self._loop.clock.now()


class LogSink:
    """What the log says about devices: one line per event, `device` bound, connections with
    the device's identity (strings were sanitised at discovery)."""

    def __call__(self, record: DeviceRecord, events: Sequence[Event], now: float) -> None:
        device_log = log.bind(device=record.device_id)
        for event in events:
            fields: dict[str, Any] = event_fields(event)
            name = fields.pop("event")
            if isinstance(event, DeviceConnected):
                fields.update(_identity_fields(record))
            if is_warning(event):
                device_log.warning(name, **fields)
            else:
                device_log.info(name, **fields)


def _identity_fields(record: DeviceRecord) -> dict[str, Any]:
    identity = record.identity
    return {
        "vendor_id": hex4(identity.vendor_id),
        "product_id": hex4(identity.product_id),
        "manufacturer": identity.manufacturer,
        "product": identity.product,
        "serial": identity.serial,
        "controls": [c.value for c in record.controls],
    }
