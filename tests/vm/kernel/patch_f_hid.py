# SPDX-License-Identifier: GPL-2.0-or-later
# This file edits the Linux kernel's drivers/usb/gadget/function/f_hid.c (GPL-2.0+, Copyright
# its authors, see that file); the module built from it is under the kernel source's licence.
"""Raise the number of HID gadget functions Debian's Linux 6.1 f_hid allows system-wide.

Owns: turning the kernel source's f_hid.c into a usb_f_hid that allows MINORS HID functions
(6.1 allows 4: `#define HIDG_MINORS 4`), so that the VM test tier can plug more virtual
headsets at once than that.

Never: patches fuzzily. If the define is not there exactly once, it stops with an error.

usage: patch_f_hid.py IN.c OUT.c
"""

from __future__ import annotations

import sys

from patching import PatchError, run

MINORS = 32
MARK = "headsetd VM test tier: more HID functions"


def patch(src: str) -> str:
    if MARK in src:
        raise PatchError("f_hid.c is already patched")
    old = "#define HIDG_MINORS\t4\n"
    n = src.count(old)
    if n != 1:
        raise PatchError(f"f_hid.c: '#define HIDG_MINORS 4': expected exactly 1 match, found {n}")
    src = src.replace(old, f"#define HIDG_MINORS\t{MINORS}\t/* {MARK} */\n", 1)
    anchor = 'MODULE_LICENSE("GPL");\n'
    if src.count(anchor) != 1:
        raise PatchError("f_hid.c: MODULE_LICENSE line not found exactly once")
    # modinfo then tells anyone looking at the guest which usb_f_hid is loaded
    return src.replace(anchor, anchor + f'MODULE_INFO(headsetd_vm, "{MARK}");\n', 1)


if __name__ == "__main__":
    sys.exit(run(patch, sys.argv, __doc__ or ""))
