"""The audio server as the watcher sees it: a seam (`AudioServer`) and its pulsectl side.

Owns: the `AudioServer` protocol (connect, read one consistent `ServerState`, wait for the next
change), and `PulseServer`, which implements it over one pulsectl connection subscribed to
source, sink, source_output, card and server events. Works the same against PulseAudio and
PipeWire's pipewire-pulse. The server is found as every libpulse client finds it
(`PULSE_SERVER`, then the user's runtime dir, ...): `server=None` passes nothing.

Never does: call pulse methods from the event callback (it only notes that something changed
and stops the loop: pulsectl's README, "Event-handling code, threads"), or start a server.
Server strings stay as the server wrote them (a source name is what the meter connects to);
they are sanitised where they reach the log (`audio_event_fields`).
"""

from __future__ import annotations

from typing import Any, Protocol

from headsetd.audio.loop import AudioServerError, PulseLink, Waker
from headsetd.audio.model import (
    PA_INVALID_INDEX,
    Card,
    DeviceProps,
    Port,
    Program,
    ServerState,
    Sink,
    Source,
    SourceOutput,
)

CLIENT_NAME = "headsetd"
EVENT_MASKS = ("sink", "source", "source_output", "card", "server")


class AudioServer(Protocol):
    """One connection to the user's audio server, used by one thread."""

    def connect(self) -> str:
        """Connect and subscribe; the server's name and version. Raises AudioServerError."""
        ...

    def state(self) -> ServerState:
        """Everything the watcher needs, read now. Raises AudioServerError."""
        ...

    def wait(self, timeout: float | None) -> bool:
        """Until the server reports a change, the waker is woken, or `timeout` seconds pass;
        True if the server changed since the last `state()`. Raises AudioServerError when
        the connection is lost."""
        ...

    def close(self) -> None: ...


def _available(value: Any) -> bool | None:
    if value == "yes":
        return True
    if value == "no":
        return False
    return None


def _props(info: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in getattr(info, "proplist", {}).items()}


def _index(value: Any) -> int | None:
    return None if value is None or int(value) == PA_INVALID_INDEX else int(value)


def _device_fields(info: Any) -> dict[str, Any]:
    """What sources and sinks share: identity, mute, volumes, card, device facts."""
    return {
        "index": int(info.index),
        "name": str(info.name),
        "description": str(info.description or ""),
        "muted": bool(info.mute),
        "volumes": tuple(float(v) for v in info.volume.values),
        "base_volume": float(info.base_volume),
        "card": _index(info.card),
        "device": DeviceProps.from_proplist(_props(info)),
    }


def source_record(info: Any) -> Source:
    monitor = _index(info.monitor_of_sink) is not None
    return Source(
        **_device_fields(info),
        channel_map=tuple(str(ch) for ch in info.channel_list),
        monitor=monitor or _props(info).get("device.class") == "monitor",
    )


def sink_record(info: Any) -> Sink:
    return Sink(**_device_fields(info))


def output_record(info: Any) -> SourceOutput:
    props = _props(info)
    return SourceOutput(
        index=int(info.index),
        source=int(info.source),
        client=int(info.client),
        corked=bool(info.corked),
        resample_method=str(info.resample_method or ""),
        application_id=props.get("application.id", ""),
        stream_monitor=props.get("stream.monitor") == "true",
        program=Program(
            name=props.get("application.name", ""),
            role=props.get("media.role", ""),
            binary=props.get("application.process.binary", ""),
        ),
    )


def card_record(info: Any) -> Card:
    return Card(
        index=int(info.index),
        name=str(info.name),
        device=DeviceProps.from_proplist(_props(info)),
        ports=tuple(
            Port(
                name=str(p.name),
                description=str(p.description or ""),
                available=_available(p.available),
                direction=str(getattr(p, "direction", "") or ""),
            )
            for p in info.port_list
        ),
    )


class PulseServer:
    """`AudioServer` over pulsectl (PulseAudio, or PipeWire through pipewire-pulse)."""

    def __init__(self, waker: Waker, server: str | None = None) -> None:
        self._waker = waker
        self._server = server
        self._link: PulseLink | None = None
        self._changed = False
        self._stop_loop: type[Exception] = Exception  # pulsectl.PulseLoopStop, once imported

    def connect(self) -> str:
        link = PulseLink(CLIENT_NAME, self._server, self._waker)
        self._stop_loop = link.pulsectl.PulseLoopStop
        try:
            link.pulse.event_mask_set(*EVENT_MASKS)
            link.pulse.event_callback_set(self._on_event)
            info = link.pulse.server_info()
        except (link.pulsectl.PulseError, link.pulsectl.PulseDisconnected) as exc:
            link.close()
            raise AudioServerError(f"subscribing: {exc}") from exc
        self._link = link
        return f"{info.server_name} {info.server_version}"

    def _on_event(self, _event: Any) -> None:
        # libpulse's loop is running: only note it, and return to the watcher to query.
        self._changed = True
        raise self._stop_loop

    def _require(self) -> PulseLink:
        if self._link is None:
            raise AudioServerError("not connected")
        return self._link

    def state(self) -> ServerState:
        link = self._require()
        pulse = link.pulse
        self._changed = False  # events arriving while we read set it again
        try:
            info = pulse.server_info()
            sources = pulse.source_list()
            sinks = pulse.sink_list()
            outputs = pulse.source_output_list()
            cards = pulse.card_list()
        except (link.pulsectl.PulseError, link.pulsectl.PulseDisconnected) as exc:
            if link.connected:
                raise AudioServerError(f"query failed: {exc}", kind="query_failed") from exc
            raise AudioServerError("the audio server closed the connection") from exc
        return ServerState(
            server=f"{info.server_name} {info.server_version}",
            sources=tuple(source_record(s) for s in sources),
            sinks=tuple(sink_record(s) for s in sinks),
            source_outputs=tuple(output_record(o) for o in outputs),
            cards=tuple(card_record(c) for c in cards),
            default_source=str(info.default_source_name or ""),
            default_sink=str(info.default_sink_name or ""),
        )

    def wait(self, timeout: float | None) -> bool:
        link = self._require()
        if not self._changed:  # events during the last queries: read again at once
            link.listen(timeout)
        return self._changed

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
