"""The device lifecycle: parts in, devices admitted, reports read, events counted and told.

Owns: `Devices`, which runs on the reader loop's thread and groups discovery's part changes by
physical device (its USB descriptors, every hidraw node, its sound cards), classifies the
device from all of them (headsetd.classify), decides whether it is tracked (a Telephony
collection with inputs, or a USB audio function), opens the sources of its telephony
interfaces, feeds each report through `decode_and_step`, and hands every event to the fleet
and then to a sink (the log, or `headsetd replay`'s printer). Report descriptors are compiled
through `DecoderCache` and USB descriptors parsed through `UsbCache`, so a replug costs
dictionary lookups. Also `assess` (what a set of parts says, shared with `headsetd list`) and
`LogSink`, what the log says about devices.

Never does: block, sleep or hold a thread (sources are loop descriptors and timers), write to a
device, or let one device's failure touch another's: a bug met by one report is counted as
`internal` for that device and reading goes on; a bug met by one part change is counted as a
discovery error. Keyboards, mice and security keys are never opened: only a HID interface with a
Telephony collection that has inputs is read, and only on a tracked device. A device is
admitted with its first part that makes it tracked and completed as the others arrive (no
waiting for the rest); a part's removal only stops its reading: the device goes when its USB
device does (or, with no USB device, its last part).
"""

from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, TypeVar

import structlog

from headsetd.classify import classify
from headsetd.discovery import Discovery, DiscoveryFailed, PartAdded, PartChange, PartRemoved
from headsetd.errors import ErrorKind
from headsetd.events import (
    DeviceClassified,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    ReadFailed,
    ReadingResumed,
    event_fields,
    facts_fields,
    is_warning,
)
from headsetd.fleet import DeviceRecord, Fleet
from headsetd.hid.decoder import Control, TelephonyDecoder, has_telephony_inputs
from headsetd.hid.descriptor import DescriptorError, ReportDescriptor, parse_report_descriptor
from headsetd.hid.source import DeviceGone, HidSource, TransportError
from headsetd.identity import (
    DeviceFacts,
    DeviceIdentity,
    HidInterface,
    Part,
    SoundCard,
    UsbDescriptors,
    identity_fields,
)
from headsetd.loop import ReaderLoop
from headsetd.session import HeadsetState, decode_and_step
from headsetd.usb.descriptors import UsbDescription, UsbDescriptorError, parse_usb_descriptors

log = structlog.get_logger("headsetd")

# Where a device's events go after the fleet has counted them: (record after them, events, now).
EventSink = Callable[[DeviceRecord, Sequence[Event], float], None]

CACHE_SIZE = 64  # distinct descriptors kept parsed (a desk has a handful)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A report descriptor, parsed; its decoder when headsetd reads such an interface."""

    descriptor: ReportDescriptor
    decoder: TelephonyDecoder | None


K = TypeVar("K")
V = TypeVar("V")


class _ParseCache(Generic[K, V]):
    """Results of `parse` by key, least recently used first out; a parse error is remembered
    and raised again, so a malformed descriptor that flaps is parsed once too."""

    def __init__(
        self, parse: Callable[[K], V], error: type[ValueError], size: int = CACHE_SIZE
    ) -> None:
        self._parse = parse
        self._error = error
        self._size = size
        self._entries: OrderedDict[K, V | ValueError] = OrderedDict()

    def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is None:
            try:
                entry = self._parse(key)
            except self._error as exc:
                entry = exc
            self._entries[key] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if isinstance(entry, ValueError):
            raise entry
        return entry


def _compile(descriptor: bytes) -> Compiled:
    parsed = parse_report_descriptor(descriptor)
    watched = has_telephony_inputs(parsed)
    return Compiled(parsed, TelephonyDecoder(parsed) if watched else None)


class DecoderCache(_ParseCache[bytes, Compiled]):
    """Parsed report descriptors and compiled decoders by descriptor bytes. A flapping cable
    replugs the same descriptor: the second time is a lookup."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__(_compile, DescriptorError, size)

    def compile(self, descriptor: bytes) -> Compiled:
        """The compiled descriptor; raises DescriptorError for a malformed one."""
        return self.get(descriptor)


class UsbCache(_ParseCache[UsbDescriptors, UsbDescription]):
    """Parsed USB descriptors by (bytes, active configuration), as DecoderCache does."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__(
            lambda usb: parse_usb_descriptors(usb.data, usb.configuration), UsbDescriptorError, size
        )

    def parse(self, usb: UsbDescriptors) -> UsbDescription:
        return self.get(usb)


def assess(
    usb: UsbDescription | None,
    names: Iterable[tuple[int, str]],
    hids: Sequence[tuple[HidInterface, Compiled | None]],
    cards: Iterable[SoundCard],
) -> tuple[bool, DeviceFacts]:
    """What a device's parts say it is, and whether headsetd tracks it: a Telephony collection
    with inputs (call control), or an audio function in its active configuration."""
    compiled = [c for _, c in hids if c is not None]
    classification = classify(usb, [c.descriptor for c in compiled], dict(names))
    controls: dict[Control, None] = {}
    for c in compiled:
        if c.decoder is not None:
            controls.update(dict.fromkeys(c.decoder.controls))
    facts = DeviceFacts(
        classification,
        tuple(controls),
        tuple(sorted(hid.node for hid, _ in hids)),
        tuple(sorted(card.name for card in cards)),
    )
    return classification.call_control or bool(classification.audio_functions), facts


@dataclass(eq=False, slots=True)
class _Hid:
    """One HID interface: its compiled descriptor (None: malformed), and when read, its state
    and source."""

    hid: HidInterface
    compiled: Compiled | None
    state: HeadsetState = field(default_factory=HeadsetState)
    source: HidSource | None = None
    tried: bool = False  # an open was attempted (a failed one is retried when reported again)
    opens: int = 0  # opens attempted: after the first, an open is a retry

    @property
    def decoder(self) -> TelephonyDecoder | None:
        """Its decoder when headsetd reads it: a Telephony collection with inputs."""
        return self.compiled.decoder if self.compiled is not None else None


@dataclass(eq=False, slots=True)
class _Device:
    identity: DeviceIdentity
    usb: UsbDescriptors | None = None
    usb_description: UsbDescription | None = None
    hids: dict[str, _Hid] = field(default_factory=dict)  # by node
    cards: dict[str, SoundCard] = field(default_factory=dict)  # by sysfs path
    facts: DeviceFacts | None = None  # set once tracked

    def add(
        self, part: Part, decoders: DecoderCache, usbs: UsbCache
    ) -> tuple[bool, ValueError | None]:
        """Take a part: whether it changes anything, and the error its descriptor met (the
        part is kept without its parse). A HID node seen again is nothing new (the monitor and
        the start-up scan may both report it), unless its open failed: then it is tried again
        (the udev rule may have granted access since)."""
        error: ValueError | None = None
        match part:
            case UsbDescriptors():
                if self.usb == part:
                    return False, None
                self.usb, self.usb_description = part, None
                try:
                    self.usb_description = usbs.parse(part)
                except UsbDescriptorError as exc:
                    error = exc
            case HidInterface():
                known = self.hids.get(part.node)
                if known is not None:
                    if known.source is not None or not known.tried:
                        return False, None
                    known.tried = False
                    return True, None
                compiled: Compiled | None = None
                try:
                    compiled = decoders.compile(part.descriptor)
                except DescriptorError as exc:
                    error = exc
                self.hids[part.node] = _Hid(part, compiled)
            case SoundCard():
                if part.key in self.cards:
                    return False, None
                self.cards[part.key] = part
        return True, error

    def assess(self) -> tuple[bool, DeviceFacts]:
        names = self.usb.interface_names if self.usb is not None else ()
        hids = [(h.hid, h.compiled) for h in self.hids.values()]
        return assess(self.usb_description, names, hids, self.cards.values())

    def read_nodes(self) -> tuple[str, ...]:
        """The nodes headsetd reads: its telephony interfaces."""
        return tuple(sorted(node for node, h in self.hids.items() if h.decoder is not None))


@dataclass(frozen=True, slots=True)
class Surveyed:
    """A tracked device as `headsetd list` shows it: who, what, and the nodes headsetd reads."""

    identity: DeviceIdentity
    facts: DeviceFacts
    read_nodes: tuple[str, ...]  # its telephony hidraw nodes


def survey(changes: Iterable[PartChange]) -> list[Surveyed]:
    """The tracked devices among the parts present now, grouped and classified as the daemon
    does it; nothing is opened."""
    decoders, usbs = DecoderCache(), UsbCache()
    devices: dict[str, _Device] = {}
    for change in changes:
        if isinstance(change, PartAdded):
            device = devices.setdefault(change.device.key, _Device(change.device))
            device.add(change.part, decoders, usbs)
    surveyed = []
    for device in devices.values():
        tracked, facts = device.assess()
        if tracked:
            surveyed.append(Surveyed(device.identity, facts, device.read_nodes()))
    return sorted(surveyed, key=lambda s: s.identity.device_id)


class Devices:
    """Devices by key; every method runs on the reader loop's thread."""

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
        self._usb = UsbCache()
        self._devices: dict[str, _Device] = {}

    @property
    def count(self) -> int:
        """Tracked devices now."""
        return sum(1 for d in self._devices.values() if d.facts is not None)

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
        """Close every source; each tracked device's unplug is counted (counters are final)."""
        for key in list(self._devices):
            self._drop(key, reason)

    # --- parts in ----------------------------------------------------------------------------

    def _add(self, change: PartAdded) -> None:
        device = self._devices.get(change.device.key)
        if device is None:
            device = self._devices[change.device.key] = _Device(change.device)
        changed, error = device.add(change.part, self._decoders, self._usb)
        if error is not None:
            self._fleet.count_discovery_error(ErrorKind.MALFORMED_DESCRIPTOR)
            log.warning("descriptor_rejected", path=change.part_key, error=str(error))
        if changed:
            self._update(device)

    def _update(self, device: _Device) -> None:
        """Admit the device once its parts make it tracked; tell what changes after that; open
        the telephony interfaces of a tracked device."""
        tracked, facts = device.assess()
        now = self._now()
        if device.facts is None:
            if not tracked:
                # Said once per device and part, so `replay` and `run --replay` both say why.
                log.info(
                    "device_ignored",
                    device=device.identity.device_id,
                    kind=facts.classification.kind.value,
                    reason="no telephony collection with inputs and no USB audio function",
                )
                return
            device.identity = self._unique(device.identity)
            device.facts = facts
            record = self._fleet.connect(device.identity, facts, now)
            self._sink(record, [DeviceConnected()], now)
        elif facts != device.facts:
            device.facts = facts
            self._emit(device, [DeviceClassified(facts)], now)
        for part in list(device.hids.values()):
            if part.decoder is not None and not part.tried:
                self._open(device, part, part.decoder)

    def _unique(self, identity: DeviceIdentity) -> DeviceIdentity:
        """Two plugged devices with one id (a vendor that gives every unit the same serial)
        stay two devices: the later one's id gets its port's (or node's) name."""
        taken = {d.identity.device_id for d in self._devices.values() if d.facts is not None}
        if identity.device_id not in taken:
            return identity
        suffix = (identity.port or identity.key).rsplit("/", 1)[-1]
        unique = replace(identity, id_suffix=f"~{suffix}")
        log.warning("device_id_collided", device=identity.device_id, renamed=unique.device_id)
        return unique

    def _open(self, device: _Device, part: _Hid, decoder: TelephonyDecoder) -> None:
        retry = part.opens > 0
        part.tried, part.opens = True, part.opens + 1
        try:
            source = self._discovery.open(part.hid)
        except DeviceGone:
            self._remove(device.identity.key, part.hid.node, "unplugged")
            return
        except TransportError as exc:
            # Plugged but unreadable (permissions, most often): a metric and a log line.
            self._emit(device, [ReadFailed(exc.kind, str(exc))])
            return
        part.source = source
        if retry:
            self._emit(device, [ReadingResumed(part.hid.node)])
        source.attach(
            self._loop,
            partial(self._report, device, part, decoder),
            partial(self._ended, device, part),
        )

    # --- reading -----------------------------------------------------------------------------

    def _report(
        self, device: _Device, part: _Hid, decoder: TelephonyDecoder, report: bytes
    ) -> None:
        now = self._now()
        try:
            part.state, events = decode_and_step(decoder, part.state, report, now)
        except Exception as exc:  # a bug met by one report must not end the device's reading
            detail = "".join(traceback.format_exception_only(exc)).strip()
            log.exception("report_failed", device=device.identity.device_id)
            events = [ReadFailed(ErrorKind.INTERNAL, f"{detail}; report {report[:64].hex()}")]
        if events:
            self._emit(device, events, now)

    def _ended(self, device: _Device, part: _Hid, end: DeviceGone | TransportError) -> None:
        if isinstance(end, TransportError):
            self._emit(device, [ReadFailed(end.kind, str(end))])
            self._close(part)
        else:
            self._remove(device.identity.key, part.hid.node, end.reason)

    def _emit(self, device: _Device, events: Sequence[Event], now: float | None = None) -> None:
        if device.facts is None:
            return
        at = self._now() if now is None else now
        record = self._fleet.apply(device.identity.device_id, events, at)
        if record is not None:
            self._sink(record, events, at)

    # --- parts out ---------------------------------------------------------------------------

    def _remove(self, device_key: str, part_key: str, reason: str) -> None:
        device = self._devices.get(device_key)
        if device is None:
            return
        if part_key == device_key:
            self._drop(device_key, reason)
            return
        part = device.hids.pop(part_key, None)
        if part is not None:
            self._close(part)
        device.cards.pop(part_key, None)
        if not (device.hids or device.cards or device.usb):
            self._drop(device_key, reason)

    @staticmethod
    def _close(part: _Hid) -> None:
        if part.source is not None:
            part.source.close()
            part.source = None

    def _drop(self, device_key: str, reason: str) -> None:
        device = self._devices.pop(device_key)
        for part in device.hids.values():
            self._close(part)
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
                fields.update(identity_fields(record.identity))
                del fields["device"]  # bound already
                fields.update(facts_fields(record.facts))
            if is_warning(event):
                device_log.warning(name, **fields)
            else:
                device_log.info(name, **fields)
