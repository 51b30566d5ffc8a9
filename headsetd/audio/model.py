"""What the audio server says, tied to headsetd's devices: pure records and pure functions.

Owns: the records of the server's objects (`ServerState`: sources, sinks, source outputs,
cards and their ports, the defaults), `AudioTarget` (what the daemon says about one device),
matching a card/source/sink to a target from the udev facts the server copied onto it,
`observe()` (server state + targets -> one `DeviceView` per device), the cubic volume scale,
the "in use" rule, the audio events, and `audio_step(state, observation, now, config)`, the
per-device transition that turns views and 100 ms peaks into events.

Never does: I/O, threads, clocks, or logging; never sees an audio sample (a `Peak` is one
number in dBFS). Strings from the server are sanitised where records are built (server.py).

Matching (docs/audio-server.md §3): the path decides when both sides have one: `sysfs.path`
(`/devices/.../usb1/1-3/1-3:1.0/sound/card4`, cut to the USB device `/devices/.../usb1/1-3`),
else `device.bus_path` (udev ID_PATH `pci-0000:00:14.0-usb-0:3:1.0`, cut to
`pci-0000:00:14.0-usb-0:3`). Without a path on one side (a replayed device has none) vendor and
product ids decide (PulseAudio writes `046d`, PipeWire `0x046d`), and the serial too where both
have one: the server's `device.serial` is udev's ID_SERIAL (vendor_model_serial), so the USB
iSerial, made udev-safe, must be its last `_`-separated part(s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from headsetd.audio.config import FLOOR_DBFS, AudioConfig
from headsetd.identity import clean_text

PA_INVALID_INDEX = 0xFFFFFFFF  # a source output without a client (module filters, loopbacks)
METER_APPLICATION_ID = "org.headsetd.LevelMeter"
METER_APPLICATION_NAME = "headsetd level meter"
METER_RATE = 10  # peaks per second: one per 100 ms window
# Level meters that are not "a program recording": desktop mixers (GNOME, pavucontrol, KDE) and
# headsetd's own (docs/audio-server.md §2, privacy indicators).
MIXER_APPLICATION_IDS = frozenset(
    {
        "org.PulseAudio.pavucontrol",
        "org.gnome.VolumeControl",
        "org.kde.kmixd",
        "org.kde.plasma-pa",
        METER_APPLICATION_ID,
    }
)
# A gap longer than this between two peaks (meter restarted, server stalled) counts as one window.
MAX_PEAK_GAP_SECONDS = 0.5
# Source names run past discovery's 64 characters (vendor_model_serial-00.analog-stereo).
LOG_TEXT_LIMIT = 200
# Ports that carry no headset: digital and display outputs.
_NOT_A_JACK = ("hdmi", "iec958", "spdif", "displayport")

_INTERFACE_DIR = re.compile(r"/\d+-[\d.]+:\d+\.\d+(?=/|$)")
_USB_ID_PATH = re.compile(r"(.*-usb-\d+:[\d.]+)(?::\d+\.\d+)?")
_UDEV_SAFE = re.compile(r"[^0-9A-Za-z#+\-.:=@_\u0080-\U0010ffff]")


# --- the server's objects -------------------------------------------------------------------


def parse_id(text: str | None) -> int | None:
    """A USB id as the servers write it: '046d' (PulseAudio) or '0x046d' (PipeWire)."""
    if not text:
        return None
    try:
        value = int(text.strip(), 16)
    except ValueError:
        return None
    return value if 0 <= value <= 0xFFFF else None


@dataclass(frozen=True, slots=True)
class DeviceProps:
    """The udev facts an audio server copied onto a card, source or sink ("" when absent)."""

    bus: str = ""  # device.bus: usb, pci, bluetooth, ...
    bus_path: str = ""  # device.bus_path (udev ID_PATH of the sound card's parent)
    sys_path: str = ""  # sysfs.path of the ALSA card
    vendor_id: int | None = None
    product_id: int | None = None
    serial: str = ""  # device.serial: udev ID_SERIAL
    card_name: str = ""  # alsa.card_name (PulseAudio) / api.alsa.card.name (PipeWire)

    @classmethod
    def from_proplist(cls, props: Mapping[str, str]) -> DeviceProps:
        return cls(
            bus=props.get("device.bus", ""),
            bus_path=props.get("device.bus_path", ""),
            sys_path=props.get("sysfs.path", ""),
            vendor_id=parse_id(props.get("device.vendor.id")),
            product_id=parse_id(props.get("device.product.id")),
            serial=props.get("device.serial", ""),
            card_name=props.get("alsa.card_name") or props.get("api.alsa.card.name") or "",
        )

    @property
    def identifies(self) -> bool:
        """Whether these facts can tie the object to a device at all."""
        return bool(self.bus_path or self.sys_path or self.vendor_id is not None)

    @property
    def is_usb(self) -> bool:
        return self.bus == "usb" or "-usb-" in self.bus_path or "/usb" in self.sys_path


@dataclass(frozen=True, slots=True)
class Port:
    name: str  # e.g. analog-input-headset-mic (not localised, unlike the description)
    description: str
    available: bool | None  # None: the card cannot tell (no jack detection)
    direction: str = ""  # input | output | "" (sink/source ports carry no direction)


@dataclass(frozen=True, slots=True)
class Source:
    index: int
    name: str
    description: str = ""
    muted: bool = False
    volumes: tuple[float, ...] = (1.0,)  # per channel, 1.0 = PA_VOLUME_NORM
    base_volume: float = 1.0
    channel_map: tuple[str, ...] = ("mono",)  # e.g. ("front-left", "front-right")
    card: int | None = None
    monitor: bool = False  # a sink's monitor: what is played, not a microphone
    device: DeviceProps = field(default_factory=DeviceProps)


@dataclass(frozen=True, slots=True)
class Sink:
    index: int
    name: str
    description: str = ""
    muted: bool = False
    volumes: tuple[float, ...] = (1.0,)
    base_volume: float = 1.0
    card: int | None = None
    device: DeviceProps = field(default_factory=DeviceProps)


@dataclass(frozen=True, slots=True)
class Program:
    """Who records (for the log only, never a label)."""

    name: str  # application.name
    role: str = ""  # media.role (a hint: browsers and Electron softphones often set none)
    binary: str = ""  # application.process.binary


@dataclass(frozen=True, slots=True)
class SourceOutput:
    """A record stream on a source."""

    index: int
    source: int
    client: int = PA_INVALID_INDEX
    corked: bool = False
    resample_method: str = ""  # "peaks" marks a peak-detect meter on PulseAudio
    application_id: str = ""
    stream_monitor: bool = False  # stream.monitor = "true" marks a meter on PipeWire
    program: Program = field(default_factory=lambda: Program(""))


@dataclass(frozen=True, slots=True)
class Card:
    index: int
    name: str  # e.g. alsa_card.pci-0000_00_1f.3
    device: DeviceProps = field(default_factory=DeviceProps)
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerState:
    """One consistent look at the server."""

    server: str = ""  # e.g. "pulseaudio 16.1" or "PulseAudio (on PipeWire 0.3.65) 15.0.0"
    sources: tuple[Source, ...] = ()
    sinks: tuple[Sink, ...] = ()
    source_outputs: tuple[SourceOutput, ...] = ()
    cards: tuple[Card, ...] = ()
    default_source: str = ""
    default_sink: str = ""


def volume_db(ratio: float) -> float:
    """A software volume (1.0 = 100 %) in dB on PulseAudio's cubic scale: 60 * log10(v)."""
    return 60.0 * math.log10(ratio) if ratio > 0 else -math.inf


def peak_dbfs(peak: float) -> float:
    """A linear sample peak (1.0 = full scale) in dBFS; digital zero reads FLOOR_DBFS."""
    return max(FLOOR_DBFS, 20.0 * math.log10(peak)) if peak > 0 else FLOOR_DBFS


def is_recording(output: SourceOutput) -> bool:
    """A program records: a real client, not corked (a held call), not a level meter."""
    return (
        output.client != PA_INVALID_INDEX
        and not output.corked
        and output.resample_method != "peaks"
        and not output.stream_monitor
        and output.application_id not in MIXER_APPLICATION_IDS
    )


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioTarget:
    """What the daemon tells the audio side about one device."""

    device_id: str  # the `device` label
    sys_path: str = ""  # sysfs devpath of the USB device, e.g. /devices/.../usb1/1-3
    bus_path: str = ""  # udev ID_PATH of the USB device, e.g. pci-0000:00:14.0-usb-0:3
    vendor_id: int = 0
    product_id: int = 0
    serial: str = ""  # iSerial as read from sysfs ("" if none)
    off_hook: bool | None = None  # from HID: the hook state now (None: unknown)


MATCH_IDS, MATCH_SERIAL, MATCH_PATH = 1, 2, 3


def usb_device_path(sys_path: str) -> str:
    """The USB device's devpath from a path below it (interface, sound card)."""
    path = sys_path.removeprefix("/sys").rstrip("/")
    found = _INTERFACE_DIR.search(path)
    return path[: found.start()] if found else path


def usb_id_path(bus_path: str) -> str:
    """The USB device's udev ID_PATH from an interface's (drops the `:cfg.intf` part)."""
    found = _USB_ID_PATH.fullmatch(bus_path)
    return found.group(1) if found else bus_path


def udev_safe(text: str) -> str:
    """A string as udev writes it into ID_SERIAL: whitespace runs and odd ASCII become '_'."""
    return _UDEV_SAFE.sub("_", "_".join(text.split()))


def serial_matches(id_serial: str, iserial: str) -> bool:
    """Whether udev's ID_SERIAL (vendor_model_serial) ends with the USB iSerial."""
    part = udev_safe(iserial)
    return bool(part) and (id_serial == part or id_serial.endswith("_" + part))


def match_score(target: AudioTarget, device: DeviceProps) -> int:
    """How surely the server object belongs to the target: 0 (not), ids, serial or path."""
    if target.sys_path and device.sys_path:
        same = usb_device_path(device.sys_path) == usb_device_path(target.sys_path)
        return MATCH_PATH if same else 0
    if target.bus_path and device.bus_path:
        return MATCH_PATH if usb_id_path(device.bus_path) == usb_id_path(target.bus_path) else 0
    if (device.vendor_id, device.product_id) != (target.vendor_id, target.product_id):
        return 0
    if target.serial and device.serial:
        return MATCH_SERIAL if serial_matches(device.serial, target.serial) else 0
    return MATCH_IDS


def owners(targets: Sequence[AudioTarget], device: DeviceProps) -> tuple[str, ...]:
    """The targets an object belongs to: those matching it best (two identical serial-less
    replayed devices share a source; a device seen by path is never shared)."""
    if not device.identifies:
        return ()
    scores = [(match_score(t, device), t.device_id) for t in targets]
    best = max((s for s, _ in scores), default=0)
    return tuple(d for s, d in scores if s == best) if best else ()


def card_device_id(card: Card) -> str:
    """The `device` label of a card that is no USB device (onboard HDA): `card:<name>`."""
    return "card:" + card.name.removeprefix("alsa_card.")


# --- one device's view of the server --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MicView:
    source: str  # the source's name
    muted: bool
    volume: float  # the loudest channel's volume, 1.0 = 100 % (what a mixer's slider shows)
    base_volume: float
    channel_map: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpeakerView:
    sink: str
    muted: bool
    volume: float


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the server says about one device now (the empty view: nothing, or no server)."""

    mic: MicView | None = None
    speaker: SpeakerView | None = None
    recorders: tuple[Program, ...] = ()  # programs recording from the device's microphone
    elsewhere: tuple[Program, ...] = ()  # programs recording from another microphone
    mic_default: bool = False
    speaker_default: bool = False
    jacks: tuple[tuple[str, bool], ...] = ()  # (port name, plugged) where the card can tell
    off_hook: bool | None = None  # from the target

    @property
    def in_use(self) -> bool:
        return self.mic is not None and bool(self.recorders)


def _choose(items: Sequence[Any], preferred: Iterable[str], default: str) -> Any:
    """The preferred item (recorded from), else the server's default, else the lowest index."""
    wanted = set(preferred)
    for item in items:
        if item.name in wanted:
            return item
    for item in items:
        if item.name == default:
            return item
    return min(items, key=lambda i: i.index)


def _is_jack(port: Port) -> bool:
    name = port.name.lower()
    return port.available is not None and not any(word in name for word in _NOT_A_JACK)


def observe(state: ServerState | None, targets: Sequence[AudioTarget]) -> dict[str, DeviceView]:
    """One view per target (empty when the server is gone), plus `card:<name>` views for
    cards that are no USB device and have jack ports."""
    if state is None:  # nothing is known, not even whether a call runs elsewhere
        return {t.device_id: DeviceView() for t in targets}
    views: dict[str, DeviceView] = {}
    cards = {c.index: c for c in state.cards}

    def props(obj: Source | Sink) -> DeviceProps:
        card = cards.get(obj.card) if obj.card is not None else None
        return obj.device if obj.device.identifies or card is None else card.device

    sources: dict[str, list[Source]] = {}
    source_owner: dict[int, tuple[str, ...]] = {}
    for source in state.sources:
        if source.monitor:
            continue
        ids = owners(targets, props(source))
        source_owner[source.index] = ids
        for device_id in ids:
            sources.setdefault(device_id, []).append(source)
    sinks: dict[str, list[Sink]] = {}
    for sink in state.sinks:
        for device_id in owners(targets, props(sink)):
            sinks.setdefault(device_id, []).append(sink)
    jacks: dict[str, list[tuple[str, bool]]] = {}
    for card in state.cards:
        ids = owners(targets, card.device)
        if not ids and not card.device.is_usb:
            ids = (card_device_id(card),)
        ports = [(p.name, bool(p.available)) for p in card.ports if _is_jack(p)]
        for device_id in ids if ports else ():
            jacks.setdefault(device_id, []).extend(ports)
    # Programs recording, by source; a monitor source is desktop audio, not a microphone.
    recording: dict[int, list[Program]] = {}
    for output in state.source_outputs:
        if is_recording(output) and output.source in source_owner:
            recording.setdefault(output.source, []).append(output.program)

    for target in targets:
        mine = sources.get(target.device_id, [])
        mine_idx = {s.index for s in mine}
        recorded = [s.name for s in mine if s.index in recording]
        mic = None
        if mine:
            src: Source = _choose(mine, recorded, state.default_source)
            volume = max(src.volumes, default=0.0)
            mic = MicView(src.name, src.muted, volume, src.base_volume, src.channel_map)
        speaker = None
        if target.device_id in sinks:
            snk: Sink = _choose(sinks[target.device_id], (), state.default_sink)
            speaker = SpeakerView(snk.name, snk.muted, max(snk.volumes, default=0.0))
        views[target.device_id] = DeviceView(
            mic=mic,
            speaker=speaker,
            recorders=tuple(p for i in sorted(mine_idx) for p in recording.get(i, ())),
            elsewhere=tuple(
                p for i, progs in sorted(recording.items()) if i not in mine_idx for p in progs
            ),
            mic_default=mic is not None and mic.source == state.default_source,
            speaker_default=speaker is not None and speaker.sink == state.default_sink,
            jacks=tuple(sorted(jacks.get(target.device_id, ()))),
            off_hook=target.off_hook,
        )
    for device_id, ports in jacks.items():
        if device_id.startswith("card:"):
            views[device_id] = DeviceView(jacks=tuple(sorted(ports)))
    return views


def meter_wanted(views: Mapping[str, DeviceView]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Which sources to meter: (source name, channel map) per device whose mic is in use."""
    return {
        device_id: (view.mic.source, view.mic.channel_map)
        for device_id, view in views.items()
        if view.mic is not None and view.in_use
    }


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioFunctionsChanged:
    """The device's microphone source / speaker sink on the server (None: none now)."""

    mic: str | None
    speaker: str | None
    event: ClassVar[str] = "audio_functions_changed"


@dataclass(frozen=True, slots=True)
class MicMutedChanged:
    muted: bool
    event: ClassVar[str] = "mic_muted_changed"


@dataclass(frozen=True, slots=True)
class MicVolumeChanged:
    ratio: float
    db: float
    base_db: float  # the hardware's unity gain on the same scale (differs per model)
    event: ClassVar[str] = "mic_volume_changed"


@dataclass(frozen=True, slots=True)
class SpeakerMutedChanged:
    muted: bool
    event: ClassVar[str] = "speaker_muted_changed"


@dataclass(frozen=True, slots=True)
class SpeakerVolumeChanged:
    ratio: float
    event: ClassVar[str] = "speaker_volume_changed"


@dataclass(frozen=True, slots=True)
class AudioDefaultChanged:
    mic_default: bool
    speaker_default: bool
    event: ClassVar[str] = "audio_default_changed"


@dataclass(frozen=True, slots=True)
class MicInUseChanged:
    in_use: bool
    programs: tuple[Program, ...] = ()  # who records (log only)
    event: ClassVar[str] = "mic_in_use_changed"


@dataclass(frozen=True, slots=True)
class MicMutedInCallChanged:
    muted_in_call: bool  # the source is muted while off-hook or in use
    event: ClassVar[str] = "mic_muted_in_call_changed"


@dataclass(frozen=True, slots=True)
class CallDeviceMismatchChanged:
    mismatch: bool | None  # None: the hook state is unknown
    programs: tuple[Program, ...] = ()  # who records from another microphone (log only)
    event: ClassVar[str] = "call_device_mismatch_changed"


@dataclass(frozen=True, slots=True)
class JackChanged:
    port: str
    connected: bool | None  # None: the port is gone (card removed or no longer tells)
    event: ClassVar[str] = "jack_changed"


@dataclass(frozen=True, slots=True)
class MicLevelMeasured:
    """One 100 ms peak while in use (tallied, not logged: ten a second)."""

    peak_dbfs: float
    level: str  # silent | quiet | low | speech
    seconds: float  # the time this peak stands for
    event: ClassVar[str] = "mic_level_measured"


@dataclass(frozen=True, slots=True)
class MicSilentStarted:
    seconds: float  # silent this long already
    event: ClassVar[str] = "mic_silent_started"


@dataclass(frozen=True, slots=True)
class MicSilentEnded:
    seconds: float  # how long it was silent
    reason: str  # "sound" (a peak above the threshold) or "not_in_use"
    event: ClassVar[str] = "mic_silent_ended"


AudioEvent = (
    AudioFunctionsChanged
    | MicMutedChanged
    | MicVolumeChanged
    | SpeakerMutedChanged
    | SpeakerVolumeChanged
    | AudioDefaultChanged
    | MicInUseChanged
    | MicMutedInCallChanged
    | CallDeviceMismatchChanged
    | JackChanged
    | MicLevelMeasured
    | MicSilentStarted
    | MicSilentEnded
)


@dataclass(frozen=True, slots=True)
class AudioServerConnected:
    server: str
    event: ClassVar[str] = "audio_server_connected"


@dataclass(frozen=True, slots=True)
class AudioServerLost:
    reason: str
    event: ClassVar[str] = "audio_server_lost"


ServerEvent = AudioServerConnected | AudioServerLost


def audio_event_fields(event: AudioEvent | ServerEvent) -> dict[str, Any] | None:
    """The event as log fields (its name and values), or None for one not to log (levels).
    Server strings (source names, programs) are sanitised here, where they reach the log."""
    if isinstance(event, MicLevelMeasured):
        return None
    fields: dict[str, Any] = {"event": event.event}
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if isinstance(value, tuple):
            value = [
                {"name": _text(p.name), "role": _text(p.role), "binary": _text(p.binary)}
                for p in value
            ]
        elif isinstance(value, float):
            value = round(value, 2)
        elif isinstance(value, str):
            value = _text(value)
        fields[name] = value
    return fields


def _text(value: str) -> str:
    return clean_text(value, limit=LOG_TEXT_LIMIT)


# --- the per-device transition --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peak:
    """One 100 ms peak of the device's microphone, in dBFS (max over channels)."""

    dbfs: float


@dataclass(frozen=True, slots=True)
class AudioState:
    view: DeviceView = field(default_factory=DeviceView)
    muted_in_call: bool = False
    mismatch: bool | None = None
    last_peak_at: float | None = None
    silent_for: float = 0.0  # consecutive seconds of silent peaks while in use
    silent: bool = False  # mic_silent_started sent, mic_silent_ended not yet

    def closed(self) -> AudioState:
        """The state once nobody records: no level history carried into the next call."""
        return replace(self, last_peak_at=None, silent_for=0.0, silent=False)


DEFAULT_CONFIG = AudioConfig()


def _round(value: float) -> float:
    return round(value, 4)  # volume changes below 0.01 % are float noise, not a user's change


def audio_step(
    state: AudioState,
    observation: DeviceView | Peak,
    now: float,
    config: AudioConfig = DEFAULT_CONFIG,
) -> tuple[AudioState, list[AudioEvent]]:
    """One device: a new view of the server, or a peak, gives the new state and events."""
    if isinstance(observation, Peak):
        return _peak(state, observation.dbfs, now, config)
    old, new = state.view, observation
    events: list[AudioEvent] = []
    if old.in_use and not new.in_use:
        events.append(MicInUseChanged(False))
        if state.silent:
            events.append(MicSilentEnded(state.silent_for, "not_in_use"))
        state = state.closed()
    functions = (new.mic.source if new.mic else None, new.speaker.sink if new.speaker else None)
    if functions != (
        old.mic.source if old.mic else None,
        old.speaker.sink if old.speaker else None,
    ):
        events.append(AudioFunctionsChanged(*functions))
    if new.mic is not None:
        if old.mic is None or old.mic.muted != new.mic.muted:
            events.append(MicMutedChanged(new.mic.muted))
        if old.mic is None or _round(old.mic.volume) != _round(new.mic.volume):
            events.append(
                MicVolumeChanged(
                    _round(new.mic.volume),
                    volume_db(new.mic.volume),
                    volume_db(new.mic.base_volume),
                )
            )
    if new.speaker is not None:
        if old.speaker is None or old.speaker.muted != new.speaker.muted:
            events.append(SpeakerMutedChanged(new.speaker.muted))
        if old.speaker is None or _round(old.speaker.volume) != _round(new.speaker.volume):
            events.append(SpeakerVolumeChanged(_round(new.speaker.volume)))
    defaults = (new.mic_default, new.speaker_default)
    had_functions = old.mic is not None or old.speaker is not None
    has_functions = new.mic is not None or new.speaker is not None
    if has_functions and (not had_functions or defaults != (old.mic_default, old.speaker_default)):
        events.append(AudioDefaultChanged(*defaults))
    if new.in_use and not old.in_use:
        events.append(MicInUseChanged(True, new.recorders))
    muted_in_call = new.mic is not None and new.mic.muted and (new.in_use or bool(new.off_hook))
    if muted_in_call != state.muted_in_call:
        events.append(MicMutedInCallChanged(muted_in_call))
    # Mismatch: in a call by the hook switch, nobody records from this headset's microphone,
    # and a program records from another one (the call runs on the wrong device).
    mismatch = None
    if new.off_hook is not None:
        mismatch = new.off_hook and not new.recorders and bool(new.elsewhere)
    if mismatch != state.mismatch:
        events.append(CallDeviceMismatchChanged(mismatch, new.elsewhere if mismatch else ()))
    old_jacks, new_jacks = dict(old.jacks), dict(new.jacks)
    for port in sorted(set(old_jacks) | set(new_jacks)):
        if old_jacks.get(port) != new_jacks.get(port):
            events.append(JackChanged(port, new_jacks.get(port)))
    return replace(state, view=new, muted_in_call=muted_in_call, mismatch=mismatch), events


def _peak(
    state: AudioState, dbfs: float, now: float, config: AudioConfig
) -> tuple[AudioState, list[AudioEvent]]:
    if not state.view.in_use:  # a late peak from a stream being closed
        return state, []
    gap = 1.0 / METER_RATE if state.last_peak_at is None else now - state.last_peak_at
    seconds = min(max(gap, 0.0), MAX_PEAK_GAP_SECONDS)
    level = config.level_of(dbfs)
    events: list[AudioEvent] = [MicLevelMeasured(dbfs, level, seconds)]
    silent_for, silent = state.silent_for, state.silent
    if level == "silent":
        silent_for += seconds
        if not silent and silent_for >= config.silence_seconds:
            events.append(MicSilentStarted(silent_for))
            silent = True
    else:
        if silent:
            events.append(MicSilentEnded(silent_for, "sound"))
        silent_for, silent = 0.0, False
    return replace(state, last_peak_at=now, silent_for=silent_for, silent=silent), events
