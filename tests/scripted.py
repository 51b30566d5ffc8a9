"""A scripted workstation for tests: devices plugged and unplugged at given times, their reports
from recordings, run through the production loop and device lifecycle on simulated time
(headsetd.replay.run_simulated). Only the discovery is the test's own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from headsetd.discovery import ChangeSink, PartAdded, PartRemoved
from headsetd.hid.recording import Recording
from headsetd.hid.source import HidSource, ReplaySource
from headsetd.identity import DeviceIdentity, HidInterface, UsbDescriptors
from headsetd.loop import ReaderLoop


@dataclass(frozen=True)
class Plug:
    """`identity` plugged in at `at`: its USB descriptors part first (`usb`, if given), then
    its HID interface with `recording`'s reports (if given); unplugged `unplug_after` seconds
    after its last report (None: stays plugged; a device without a recording stays too)."""

    at: float
    identity: DeviceIdentity
    recording: Recording | None = None
    unplug_after: float | None = 0.0
    node: str = ""
    usb: bytes | None = None


class ScriptedDiscovery:
    def __init__(self, plugs: Sequence[Plug]) -> None:
        self.plugs = plugs
        self._loop: ReaderLoop | None = None
        self._changes: ChangeSink | None = None

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        self._loop, self._changes = loop, changes
        for index, plug in enumerate(self.plugs):
            loop.call_at(plug.at, lambda index=index: self._plug(index))

    def _node(self, index: int) -> str:
        return self.plugs[index].node or f"scripted-{index}"

    def _plug(self, index: int) -> None:
        plug = self.plugs[index]
        if self._changes is None:
            return
        if plug.usb is not None:
            self._changes(PartAdded(plug.identity, UsbDescriptors(plug.usb, None)))
        if plug.recording is not None:
            hid = HidInterface(self._node(index), plug.recording.descriptor)
            self._changes(PartAdded(plug.identity, hid))

    def open(self, hid: HidInterface) -> HidSource:
        index = next(i for i in range(len(self.plugs)) if self._node(i) == hid.node)
        recording = self.plugs[index].recording
        reports = recording.reports if recording is not None else ()
        return ReplaySource(reports, 1.0, lambda: self._end(index))

    def _end(self, index: int) -> None:
        plug, loop = self.plugs[index], self._loop
        if plug.unplug_after is None or loop is None:
            return
        node = self._node(index)
        loop.call_later(plug.unplug_after, lambda: self._unplug(plug.identity.key, node))

    def _unplug(self, key: str, node: str) -> None:
        if self._changes is not None:
            self._changes(PartRemoved(key, node))

    def stop(self) -> None:
        self._changes = None
