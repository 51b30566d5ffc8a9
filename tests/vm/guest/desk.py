"""Gadgets that more than one guest module plugs, beyond the one-fixture-per-gadget headsets:
the Plantronics Blackwire 3220 as the composite device it is, and gadgets under test ids.

Owns: the Blackwire 3220's three HID interfaces (telephony, consumer, vendor 0xffa0: interface
numbers 0, 1, 2) as one gadget, with or without a UAC2 function; gadgets under the pid.codes
test ids (1209:0001), for devices whose kind must come from their descriptors alone (audio-only
gadgets, keyboards).

Never: plugs anything (the modules decide when), or chooses ids to steer headsetd: a gadget's
kind is in its descriptors.
"""

from __future__ import annotations

from typing import Any

import gadget
import hidreport

BLACKWIRE = [
    hidreport.load_fixture(
        hidreport.FIXTURES_DIR / f"plantronics_blackwire-3220_047f-c056_{part}.hid"
    )
    for part in ("telephony", "consumer", "vendor-ffa0")
]
TELEPHONY = 0  # the Blackwire's HID function (and USB interface) with the telephony collection
CONSUMER = 1
VENDOR = 2


def blackwire_headset(serial: str, name: str, audio: gadget.Audio | None) -> gadget.Gadget:
    maker, product = gadget.split_name(BLACKWIRE[0].name)
    return gadget.Gadget(
        0x047F,
        0xC056,
        manufacturer=maker,
        product=product,
        serial=serial,
        hid=[gadget.HidFunction.of(fx) for fx in BLACKWIRE],
        audio=audio,
        name=name,
    )


def vtest_gadget(product: str, serial: str, name: str, **kw: Any) -> gadget.Gadget:
    """A gadget with the pid.codes test ids (kinds come from descriptors, never from ids)."""
    return gadget.Gadget(
        0x1209, 0x0001, manufacturer="VTest", product=product, serial=serial, name=name, **kw
    )
