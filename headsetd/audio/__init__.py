"""The microphone and speaker through the user's audio server (issue 7): mute, volume, "in use",
the default device, the call running on another microphone, analog jacks, and the level of
the microphone while a program records from it.

Owns nothing itself; it documents the interface between the daemon and the audio side.
Importing this package (or any module in it) loads neither pulsectl nor libpulse: they are
loaded when `AudioWatcher.start()` first connects, so a daemon with `[audio] enabled = false`
pays nothing for them. Never does: store, log or send an audio sample (only 100 ms peak
levels leave meter.py), or hold a microphone open while nobody records from it.

Modules: `config` ([audio] section), `model` (pure records, matching, `observe`,
`audio_step`), `collect` (`AudioTally`, `tally_audio`, `render_audio`), `server` (the
`AudioServer` seam and its pulsectl side), `meter` (the level meter's thread and streams),
`loop` (one wakeable pulsectl connection), `watcher` (`AudioWatcher`, the two threads).

The interface to the daemon:

    from headsetd.audio.config import AudioConfig, audio_config   # [audio] -> AudioConfig
    from headsetd.audio.model import AudioTarget, audio_event_fields
    from headsetd.audio.collect import AudioTally, tally_audio, AudioSnapshot, render_audio
    from headsetd.audio.watcher import AudioWatcher

    @dataclass(frozen=True, slots=True)
    class AudioTarget:            # what the daemon tells the audio side about one device
        device_id: str            # the `device` label
        sys_path: str             # sysfs devpath of the USB device ("" if none), e.g.
                                  #   /devices/pci0000:00/0000:00:14.0/usb1/1-3
        bus_path: str             # udev ID_PATH of the USB device ("" if none), e.g.
                                  #   pci-0000:00:14.0-usb-0:3
        vendor_id: int
        product_id: int
        serial: str               # iSerial as read from sysfs ("" if none)
        off_hook: bool | None     # from HID: the hook state now (None: unknown)

    class AudioWatcher:           # owns the two threads ("audio", "audio-meter")
        def __init__(self, config: AudioConfig, clock: Clock, sink: AudioSink,
                     server: str | None = None): ...    # server: None = as libpulse finds it
        def set_targets(self, targets: Sequence[AudioTarget]) -> None
            # thread-safe, returns at once; call it whenever devices or hook states change
        def start(self) -> None
        def stop(self, timeout: float = 0.1) -> None    # returns within `timeout`
        def status(self) -> AudioStatus                 # server_up, errors: thread-safe

    AudioSink = Callable[[str | None, Sequence[AudioEvent | ServerEvent], float], None]

`sink(device_id, events, now)` is called from the audio thread. `device_id` is a target's
device id, or `card:<card name>` for an onboard card (no USB device) with jack ports, or None
for the server connection's own events (`AudioServerConnected`, `AudioServerLost`: log them,
nothing to tally). The daemon keeps one `AudioTally` per device id (created on its first
event), applies `tally_audio(tally, event, now)` to each event, and logs each event whose
`audio_event_fields(event)` is not None (everything but the ten-a-second
`MicLevelMeasured`), with the device bound. A scrape renders
`render_audio(AudioSnapshot(now, watcher.status(), tuple(sorted(tallies.items()))))` beside
the HID families, and nothing of it when audio is disabled.

Labels: `device` (a target's id, or `card:<card name without alsa_card.>` for an onboard card's
jacks), `level` (silent, quiet, low, speech), `port` (the server's port name, e.g.
analog-output-headphones: not localised), `kind` (connection_lost, query_failed, meter_failed,
internal). No program, source or card string is ever a label.

Log events: audio_server_connected (server), audio_server_lost (reason),
audio_functions_changed (mic, speaker: the matched source and sink), mic_muted_changed
(muted), mic_volume_changed (ratio, db, base_db), speaker_muted_changed, speaker_volume_changed,
audio_default_changed (mic_default, speaker_default), mic_in_use_changed (in_use, programs:
application.name, media.role, binary), mic_muted_in_call_changed, call_device_mismatch_changed
(mismatch, programs), jack_changed (port, connected), mic_silent_started (seconds),
mic_silent_ended (seconds, reason).
"""
