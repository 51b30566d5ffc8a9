"""Recordings through the production path, at once: what `headsetd replay` prints.

Owns: `replay(recordings, sink)`, which runs hid-recorder recordings through the very parts the
daemon runs (replay discovery, the device lifecycle, the reader loop, the decoder, the state
machine and the fleet) on simulated time: the loop moves a manual clock to each report's
recorded time instead of waiting for it, so a day's recording replays in moments with its own
timing. Tests of the recordings and the golden exposition use it too, so what they check is
the daemon's own loop, not a copy.

Never does: touch a device or the network, or sleep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from headsetd.clock import ManualClock
from headsetd.devices import Devices, EventSink
from headsetd.discovery import Discovery, ReplayDiscovery
from headsetd.fleet import Fleet
from headsetd.hid.recording import Recording
from headsetd.loop import ReaderLoop


def _raise(exc: BaseException) -> None:
    raise exc


def run_simulated(discovery: Discovery, sink: EventSink, start: float = 0.0) -> Fleet:
    """Run `discovery`'s devices through the production loop on a clock that starts at `start`
    and jumps from one due event to the next, until nothing is left to happen."""
    clock = ManualClock(start)
    fleet = Fleet(retention=math.inf)
    loop = ReaderLoop(clock, _raise, advance_clock=clock.advance_to)
    devices = Devices(loop, discovery, fleet, sink)
    discovery.start(loop, devices.on_change)
    try:
        loop.run()
    finally:
        discovery.stop()
        loop.close()
    return fleet


def replay(recordings: Sequence[Recording], sink: EventSink) -> Fleet:
    """Each recording as a device plugged at 0 s, its reports at their recorded offsets from
    its first, unplugged after its last; returns the fleet that counted it all."""
    return run_simulated(ReplayDiscovery.of_recordings(recordings), sink)
