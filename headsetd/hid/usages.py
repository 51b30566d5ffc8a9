"""Names of the HID usage pages and usages headsetd shows or acts on (HID Usage Tables 1.5).

Owns: constants for the usages the decoder looks for and names for `headsetd inspect`. Extended
usages throughout: usage page << 16 | usage id. Never does: decide semantics (the decoder does).
"""

from __future__ import annotations

from typing import Final

PAGE_GENERIC_DESKTOP: Final = 0x01
PAGE_BUTTON: Final = 0x09
PAGE_LED: Final = 0x08
PAGE_TELEPHONY: Final = 0x0B
PAGE_CONSUMER: Final = 0x0C


def usage(page: int, usage_id: int) -> int:
    return (page << 16) | usage_id


HOOK_SWITCH: Final = usage(PAGE_TELEPHONY, 0x20)
FLASH: Final = usage(PAGE_TELEPHONY, 0x21)
REDIAL: Final = usage(PAGE_TELEPHONY, 0x24)
DROP: Final = usage(PAGE_TELEPHONY, 0x26)
PHONE_MUTE: Final = usage(PAGE_TELEPHONY, 0x2F)
CONSUMER_MUTE: Final = usage(PAGE_CONSUMER, 0xE2)
VOLUME_UP: Final = usage(PAGE_CONSUMER, 0xE9)
VOLUME_DOWN: Final = usage(PAGE_CONSUMER, 0xEA)

PAGE_NAMES: Final[dict[int, str]] = {
    PAGE_GENERIC_DESKTOP: "Generic Desktop",
    0x07: "Keyboard",
    PAGE_LED: "LED",
    PAGE_BUTTON: "Button",
    PAGE_TELEPHONY: "Telephony",
    PAGE_CONSUMER: "Consumer",
}

USAGE_NAMES: Final[dict[int, str]] = {
    usage(PAGE_TELEPHONY, 0x01): "Phone",
    usage(PAGE_TELEPHONY, 0x05): "Headset",
    usage(PAGE_TELEPHONY, 0x06): "Telephony Key Pad",
    usage(PAGE_TELEPHONY, 0x07): "Programmable Button",
    HOOK_SWITCH: "Hook Switch",
    FLASH: "Flash",
    usage(PAGE_TELEPHONY, 0x22): "Feature",
    usage(PAGE_TELEPHONY, 0x23): "Hold",
    REDIAL: "Redial",
    usage(PAGE_TELEPHONY, 0x25): "Transfer",
    DROP: "Drop",
    usage(PAGE_TELEPHONY, 0x27): "Park",
    usage(PAGE_TELEPHONY, 0x2A): "Line",
    usage(PAGE_TELEPHONY, 0x2B): "Speaker Phone",
    usage(PAGE_TELEPHONY, 0x2C): "Conference",
    usage(PAGE_TELEPHONY, 0x2D): "Ring Enable",
    usage(PAGE_TELEPHONY, 0x2E): "Ring Select",
    PHONE_MUTE: "Phone Mute",
    usage(PAGE_TELEPHONY, 0x30): "Caller ID",
    usage(PAGE_TELEPHONY, 0x31): "Send",
    usage(PAGE_TELEPHONY, 0x50): "Speed Dial",
    usage(PAGE_TELEPHONY, 0x72): "Voice Mail",
    usage(PAGE_TELEPHONY, 0x97): "Line Busy Tone",
    usage(PAGE_TELEPHONY, 0x9E): "Ringer",
    usage(PAGE_TELEPHONY, 0xB0): "Phone Key 0",
    usage(PAGE_TELEPHONY, 0xB1): "Phone Key 1",
    usage(PAGE_TELEPHONY, 0xB2): "Phone Key 2",
    usage(PAGE_TELEPHONY, 0xB3): "Phone Key 3",
    usage(PAGE_TELEPHONY, 0xB4): "Phone Key 4",
    usage(PAGE_TELEPHONY, 0xB5): "Phone Key 5",
    usage(PAGE_TELEPHONY, 0xB6): "Phone Key 6",
    usage(PAGE_TELEPHONY, 0xB7): "Phone Key 7",
    usage(PAGE_TELEPHONY, 0xB8): "Phone Key 8",
    usage(PAGE_TELEPHONY, 0xB9): "Phone Key 9",
    usage(PAGE_TELEPHONY, 0xBA): "Phone Key Star",
    usage(PAGE_TELEPHONY, 0xBB): "Phone Key Pound",
    usage(PAGE_LED, 0x09): "Mute",
    usage(PAGE_LED, 0x17): "Off-Hook",
    usage(PAGE_LED, 0x18): "Ring",
    usage(PAGE_LED, 0x19): "Message Waiting",
    usage(PAGE_LED, 0x20): "Hold",
    usage(PAGE_LED, 0x21): "Microphone",
    usage(PAGE_LED, 0x2A): "On-Line",
    usage(PAGE_CONSUMER, 0x01): "Consumer Control",
    usage(PAGE_CONSUMER, 0xB5): "Scan Next Track",
    usage(PAGE_CONSUMER, 0xB6): "Scan Previous Track",
    usage(PAGE_CONSUMER, 0xCD): "Play/Pause",
    CONSUMER_MUTE: "Mute",
    VOLUME_UP: "Volume Increment",
    VOLUME_DOWN: "Volume Decrement",
}


def page_name(page: int) -> str:
    if page >= 0xFF00:
        return f"Vendor 0x{page:04x}"
    return PAGE_NAMES.get(page, f"Page 0x{page:02x}")


def usage_name(extended_usage: int) -> str:
    name = USAGE_NAMES.get(extended_usage)
    if name is not None:
        return name
    page, usage_id = extended_usage >> 16, extended_usage & 0xFFFF
    if page == PAGE_BUTTON:
        return f"Button {usage_id}"
    return f"{page_name(page)} 0x{usage_id:02x}"
