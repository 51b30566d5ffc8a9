"""What the kernel-source patch scripts share: their error, exact replacement, and the
`SCRIPT IN.c OUT.c` command line. Exact or nothing: a source that has moved on stops the
build with a message naming the edit, so nobody tests against a half-patched driver."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PatchError(RuntimeError):
    """The kernel source no longer matches what a patch was written against."""


def replace_once(src: str, old: str, new: str, what: str) -> str:
    n = src.count(old)
    if n != 1:
        raise PatchError(f"{what}: expected exactly 1 match, found {n}")
    return src.replace(old, new, 1)


def run(patch: Callable[[str], str], argv: list[str], usage: str) -> int:
    """`patch_x.py IN.c OUT.c`: 0 written, 1 the source no longer matches, 2 usage."""
    if len(argv) != 3:
        print(usage, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        src = f.read()
    try:
        out = patch(src)
    except PatchError as e:
        print(f"PATCH FAILED ({argv[1]}): {e}", file=sys.stderr)
        return 1
    with open(argv[2], "w", encoding="utf-8") as f:
        f.write(out)
    return 0
