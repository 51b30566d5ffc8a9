"""The organisation's approved models: which vendor:product pairs a workstation may use.

Owns: `Policy` (the approved patterns from `[policy] approved`), pattern checking
(`parse_pattern`) and `approves(vendor_id, product_id)`. Applied when a scrape renders, so a
reloaded policy judges every known device at once and nothing is stored per device.

Never does: judge without a policy (no `[policy]`, no `headsetd_device_approved` series), or look
at anything but the USB ids (names are the device's own claim, not an identity).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from headsetd.identity import hex4

# "047f:c056", "047f:*", "0b0e:03??": 4 hex digits or a glob of them on each side.
_PATTERN = re.compile(r"^[0-9a-f*?]{1,4}:[0-9a-f*?]{1,4}$")


def parse_pattern(text: str) -> str:
    """A `vendor:product` pattern, lowercased; ValueError says what is wrong."""
    pattern = text.strip().lower()
    if not _PATTERN.match(pattern):
        raise ValueError(f"{text!r} is not vendor:product in hex (e.g. 0b0e:0307, 047f:*)")
    return pattern


@dataclass(frozen=True, slots=True)
class Policy:
    approved: tuple[str, ...]  # patterns, as parse_pattern returns them

    def approves(self, vendor_id: int, product_id: int) -> bool:
        ids = f"{hex4(vendor_id)}:{hex4(product_id)}"
        return any(fnmatch.fnmatchcase(ids, pattern) for pattern in self.approved)
