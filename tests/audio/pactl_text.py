"""Real `pactl list` / `pacmd list-*` dumps (tests/fixtures/pulse) read into headsetd's records.

Owns: `parse_dump(text)`, a tolerant reader of what users posted: English, German and French
`pactl` output and `pacmd` output, excerpts that start mid-dump or are cut mid-line. It reads
blocks (cards, sources, sinks), their properties (`key = "value"`, cut lines skipped), mute,
volumes (raw `N / P% / D dB` triples), base volume, channel map, card index, ports and their
availability, and the `*` that marks pacmd's default. Test code only: the daemon reads the
server through pulsectl, never this text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from headsetd.audio.model import Card, DeviceProps, Port, ServerState, Sink, Source

PULSE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pulse"
PA_VOLUME_NORM = 0x10000

_PACTL_HEADER = re.compile(r"^(\S+) #(\d+)\s*$")  # Card #20, Karte #54, Sink #66 (column 0)
_PACMD_HEADER = re.compile(r"^\s*(\*)?\s*index: (\d+)\s*$")  # "  * index: 5"
_KINDS = {
    "card": "card",
    "karte": "card",
    "carte": "card",
    "source": "source",
    "quelle": "source",
    "sink": "sink",
    "senke": "sink",
    "destination": "sink",
}
_PROPERTY = re.compile(r'^\s+([\w.\-]+) = "(.*)"\s*$')
_FIELD = re.compile(r"^\s*([A-Za-zéèà][\w éèà-]*?)\s*:\s*(.*?)\s*$")
_VOLUME = re.compile(r"(\d+) /\s*(\d+)% /\s*(-?[\d.,]+|-inf) dB")
_PORT = re.compile(r"^\s+([A-Za-z0-9_\-\[\] .]+?): (.+) \((.*)\)\s*$")
_SECTIONS = {"properties", "eigenschaften", "propriétés", "profiles", "profile", "ports"}


@dataclass
class Block:
    """One card, source or sink as the dump shows it (only what the dump has)."""

    kind: str = ""  # card | source | sink ("" until known)
    index: int = -1  # -1: the dump does not show it (cut)
    default: bool = False  # pacmd's "*"
    name: str = ""
    muted: bool | None = None
    volumes: list[tuple[int, float]] = field(default_factory=list)  # (raw, dB as printed)
    base_volume: tuple[int, float] | None = None
    channel_map: tuple[str, ...] = ()
    card: int | None = None
    monitor: bool = False
    props: dict[str, str] = field(default_factory=dict)
    ports: list[Port] = field(default_factory=list)


def _db(text: str) -> float:
    return float("-inf") if text == "-inf" else float(text.replace(",", "."))


def _availability(text: str) -> bool | None:
    if re.search(r"available: yes|(^|, )available\)?$", text):
        return True
    if re.search(r"available: no|not available", text):
        return False
    return None


def _kind_of_name(name: str) -> str:
    if name.startswith("alsa_card."):
        return "card"
    if name.startswith("alsa_input.") or name.endswith(".monitor"):
        return "source"
    if name.startswith("alsa_output."):
        return "sink"
    return ""


def parse_blocks(text: str, kind_hint: str = "") -> list[Block]:
    blocks: list[Block] = []
    block = Block()
    section = ""

    def finish() -> None:
        if block.name or block.props or block.ports:
            blocks.append(block)

    for line in text.splitlines():
        if line.startswith("#") or line.startswith("$"):
            continue
        header = _PACTL_HEADER.match(line) or _PACMD_HEADER.match(line)
        if header:
            finish()
            block, section = Block(), ""
            if header.re is _PACTL_HEADER:
                block.kind = _KINDS.get(header.group(1).lower(), "")
            else:
                block.default = header.group(1) == "*"
            block.index = int(header.group(2))
            continue
        prop = _PROPERTY.match(line)
        if prop:
            block.props[prop.group(1)] = prop.group(2)
            continue
        port = _PORT.match(line)
        if port and section not in ("profiles", "profile") and "sinks:" not in port.group(3):
            block.ports.append(
                Port(port.group(1).strip(), port.group(2), _availability(port.group(3)))
            )
            continue
        found = _FIELD.match(line)
        if not found:
            continue
        key, value = found.group(1).lower(), found.group(2)
        if key in _SECTIONS and not value:
            section = key
        elif key in ("name", "nom"):
            block.name = value.strip("<>")
        elif key in ("mute", "muted"):
            block.muted = value == "yes"
        elif key == "volume":
            block.volumes = [(int(n), _db(d)) for n, _p, d in _VOLUME.findall(value)]
        elif key == "base volume":
            vols = _VOLUME.findall(value)
            block.base_volume = (int(vols[0][0]), _db(vols[0][2])) if vols else None
        elif key == "channel map":
            block.channel_map = tuple(value.split(","))
        elif key == "card" and value.split()[0].isdigit():
            block.card = int(value.split()[0])
        elif key in ("monitor_of", "monitor of sink") and value not in ("n/a", ""):
            block.monitor = True
    finish()
    for b in blocks:
        b.kind = (
            b.kind
            or _kind_of_name(b.name)
            or _kind_of_name(b.props.get("node.name", ""))
            or _kind_of_name(b.props.get("device.name", ""))
            or kind_hint
        )
        b.monitor = b.monitor or b.props.get("device.class") == "monitor"
    return blocks


def _ratio(raw: int) -> float:
    return raw / PA_VOLUME_NORM


def to_state(blocks: list[Block]) -> ServerState:
    """The dump as the records the model reads (indexes invented where the dump is cut)."""
    sources: list[Source] = []
    sinks: list[Sink] = []
    cards: list[Card] = []
    default_source = default_sink = ""
    for n, b in enumerate(blocks):
        index = b.index if b.index >= 0 else 1000 + n
        device = DeviceProps.from_proplist(b.props)
        name = b.name or b.props.get("node.name", "") or f"cut-{n}"
        volumes = tuple(_ratio(raw) for raw, _db in b.volumes) or (1.0,)
        base = _ratio(b.base_volume[0]) if b.base_volume else 1.0
        if b.kind == "card":
            cards.append(Card(index, name, device, tuple(b.ports)))
        elif b.kind == "source":
            channels = b.channel_map or ("mono",) * len(volumes)
            sources.append(
                Source(
                    index,
                    name,
                    "",
                    bool(b.muted),
                    volumes,
                    base,
                    channels,
                    b.card,
                    b.monitor,
                    device,
                )
            )
            default_source = name if b.default else default_source
        elif b.kind == "sink":
            sinks.append(Sink(index, name, "", bool(b.muted), volumes, base, b.card, device))
            default_sink = name if b.default else default_sink
    return ServerState(
        server="dump",
        sources=tuple(sources),
        sinks=tuple(sinks),
        cards=tuple(cards),
        default_source=default_source,
        default_sink=default_sink,
    )


def kind_hint(path: Path) -> str:
    """pa-source_... holds sources, pw-card_... cards (for blocks whose header is cut)."""
    what = path.name.split("_", 1)[0].split("-", 1)[1]
    return {"source": "source", "card": "card", "sources-sinks": "", "card-sink": ""}.get(what, "")


def load(path: Path) -> tuple[list[Block], ServerState]:
    blocks = parse_blocks(path.read_text(encoding="utf-8"), kind_hint(path))
    return blocks, to_state(blocks)


DUMPS = sorted(PULSE_FIXTURES.glob("*.txt"))
