"""Prepare the VM test tier's guest from Debian's packages, and cache it.

Owns: everything the guest needs that is not the host's own filesystem:
- the Debian packages the tier uses on the host and in the guest (installed with apt-get when
  asked to and running as root);
- the current Debian kernel (the `linux-image-amd64` target, `apt-get download`), unpacked to an
  uncompressed vmlinux (booted through its PVH entry: much faster under TCG than the bzImage);
- its modules (the subtrees the tier needs), with two modules rebuilt from Debian's
  `linux-source` against Debian's `linux-headers`: dummy_hcd with isochronous transfers
  (kernel/patch_dummy_hcd.py: audio) and usb_f_hid allowing 32 HID functions instead of 4
  (kernel/patch_f_hid.py). Both patches stop loudly if the source no longer matches;
- a small initramfs (busybox-static, the 9p/overlay modules, kernel/init).

The result lives in a cache outside the repository ($HEADSETD_VM_CACHE, default
~/.cache/headsetd-vm), in a directory keyed by the kernel's version and a hash of the files that
build it, so a kernel update or a change to these scripts rebuilds and anything else is reused.

Never: downloads anything but Debian packages through apt; writes into the repository; uses
the host's running kernel or its modules; installs packages unless asked (`--install` or
`prepare(install=True)`).

Command line (one command for a fresh machine; run as root to install packages):
    python3 tests/vm/vmimage.py [--install] [--rebuild]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNEL_DIR = HERE / "kernel"

# Host packages. qemu runs the guest; busybox-static is the initramfs; make/gcc/linux-headers
# build the two patched modules; the rest is used *inside* the guest through the 9p root
# (udevd for real hotplug events and modalias loading, alsa-utils to play the headset's mic,
# pulseaudio to see the headset as a desktop would, usbutils for the console's diagnostics).
BASE_PACKAGES = [
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "make",
    "gcc",
    "udev",
    "alsa-utils",
    "pulseaudio",
    "pulseaudio-utils",
    "usbutils",
]

# Module subtrees taken from the kernel package: USB host+gadget, HID (every hid-*.ko, so the
# Plantronics/Microsoft/Jabra drivers bind as on a desktop), input, sound, 9p/overlay/configfs and
# what they depend on. Checked below: every module the guest loads must resolve its deps here.
MODULE_SUBTREES = [
    "drivers/usb",
    "drivers/hid",
    "drivers/input",
    "drivers/virtio",
    "drivers/media",
    "drivers/leds",
    "drivers/base",
    "drivers/char",
    "sound",
    "fs/9p",
    "fs/netfs",
    "fs/fscache",
    "fs/overlayfs",
    "fs/configfs",
    "net/9p",
    "lib",
    "crypto",
]
# Loaded by the initramfs (before the root exists) and by the guest's entry script by name.
INITRAMFS_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]
GUEST_MODULES = [
    "configfs",
    "dummy_hcd",
    "libcomposite",
    "usb_f_hid",
    "usb_f_uac2",
    "usbhid",
    "hid_generic",
    "hid_plantronics",
    "hid_microsoft",
    "hid_jabra",
    "snd_usb_audio",
]
# (kernel source path, file name in the build dir, patch script or None)
SOURCE_FILES = [
    ("drivers/usb/gadget/udc/dummy_hcd.c", "dummy_hcd.c", "patch_dummy_hcd.py"),
    ("drivers/usb/gadget/function/f_hid.c", "f_hid.c", "patch_f_hid.py"),
    ("drivers/usb/gadget/function/u_hid.h", "u_hid.h", None),
    ("drivers/usb/gadget/u_f.h", "u_f.h", None),
]
KBUILD = "obj-m := dummy_hcd.o usb_f_hid.o\nusb_f_hid-y := f_hid.o\n"
# where the rebuilt modules replace Debian's (same names, so modprobe and aliases just work)
REBUILT = {
    "dummy_hcd.ko": "kernel/drivers/usb/gadget/udc/dummy_hcd.ko",
    "usb_f_hid.ko": "kernel/drivers/usb/gadget/function/usb_f_hid.ko",
}


class PrepareError(RuntimeError):
    """Preparation failed; the message says what to do."""


class MissingPrerequisite(PrepareError):
    """Something the host must provide (a package) is not there and was not to be installed."""


@dataclass(frozen=True)
class Image:
    """A prepared guest: what vmboot needs to start it."""

    kernel_release: str  # e.g. 6.1.0-56-amd64
    package_version: str  # e.g. 6.1.192-2
    directory: Path
    vmlinux: Path
    initramfs: Path
    modules_root: Path  # holds lib/modules/<kernel_release>
    info: dict[str, object]


def cache_root() -> Path:
    env = os.environ.get("HEADSETD_VM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "headsetd-vm"


def build_inputs_hash() -> str:
    """Hash of every file that decides what the image contains (not the guest tests)."""
    h = hashlib.sha256()
    for p in [Path(__file__).resolve(), *sorted(KERNEL_DIR.iterdir())]:
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]


def _sh(cmd: str, cwd: Path | None = None) -> None:
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, text=True, capture_output=True, check=False
    )
    if r.returncode:
        raise PrepareError(f"command failed ({r.returncode}): {cmd}\n{r.stderr[-2000:]}")


def _installed(pkg: str) -> bool:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", pkg], text=True, capture_output=True, check=False
    )
    return r.returncode == 0 and r.stdout.strip().endswith(" installed")


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def kernel_package(install: bool, log: Callable[[str], None]) -> tuple[str, str]:
    """(kernel release, package version) of Debian's current `linux-image-amd64` target."""
    for attempt in (0, 1):
        r = subprocess.run(
            ["apt-cache", "depends", "linux-image-amd64"],
            text=True,
            capture_output=True,
            check=False,
        )
        pkg = next(
            (
                line.split()[1]
                for line in r.stdout.splitlines()
                if line.strip().startswith("Depends: linux-image-")
            ),
            None,
        )
        if pkg:
            pol = _run(["apt-cache", "policy", pkg]).stdout
            ver = next(
                (ln.split()[1] for ln in pol.splitlines() if ln.strip().startswith("Candidate:")),
                "",
            )
            if ver and ver != "(none)":
                return pkg.removeprefix("linux-image-"), ver
        if attempt == 0 and install and os.geteuid() == 0:
            log("apt lists do not know linux-image-amd64: apt-get update")
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=_apt_env())
            continue
        raise MissingPrerequisite(
            "apt does not know Debian's linux-image-amd64 (run `apt-get update` as root, "
            "or `python3 tests/vm/vmimage.py --install`)"
        )
    raise AssertionError("unreachable")


def required_packages(kernel_release: str) -> list[str]:
    return [*BASE_PACKAGES, f"linux-headers-{kernel_release}"]


def ensure_packages(kernel_release: str, install: bool, log: Callable[[str], None]) -> None:
    missing = [p for p in required_packages(kernel_release) if not _installed(p)]
    if not missing:
        return
    if not (install and os.geteuid() == 0):
        raise MissingPrerequisite(
            "missing Debian packages: "
            + " ".join(missing)
            + " (as root: `python3 tests/vm/vmimage.py --install`, or apt-get install them)"
        )
    log("apt-get update")  # stale lists make apt-get install fail on packages Debian has replaced
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=_apt_env())
    log(f"apt-get install {' '.join(missing)}")
    r = subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "DPkg::Lock::Timeout=300",
            *missing,
        ],
        text=True,
        capture_output=True,
        env=_apt_env(),
        check=False,
    )
    if r.returncode:
        raise PrepareError(f"apt-get install failed:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")


def _download(pkg: str, version: str, dest: Path) -> Path:
    """`apt-get download pkg=version` into dest (cached); returns the .deb."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{pkg}_{version.replace(':', '%3a')}_*.deb"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        r = subprocess.run(
            ["apt-get", "download", "-q", f"{pkg}={version}"],
            cwd=tmp,
            text=True,
            capture_output=True,
            check=False,
        )
        if r.returncode:
            raise PrepareError(
                f"apt-get download {pkg}={version} failed: {r.stderr.strip()[-800:]}"
            )
        (deb,) = Path(tmp).glob("*.deb")
        return Path(shutil.move(str(deb), dest / deb.name))


def _kernel_sources(
    kernel_release: str, version: str, cache: Path, log: Callable[[str], None]
) -> Path:
    """The few kernel source files the rebuilt modules need, from Debian's linux-source-X.Y of
    exactly the kernel's version (a different version would build a module that does not match
    the kernel it loads into)."""
    series = ".".join(kernel_release.split(".")[:2])
    srcpkg = f"linux-source-{series}"
    out = cache / "src" / f"{srcpkg}_{version}"
    if all((out / name).is_file() for _, name, _ in SOURCE_FILES):
        return out
    pol = _run(["apt-cache", "policy", srcpkg]).stdout
    if version not in pol:
        raise PrepareError(
            f"{srcpkg} {version} (the kernel's own version) is not available from apt; "
            f"apt offers:\n{pol}\nThe patched modules must be built from the kernel's exact source."
        )
    log(f"downloading {srcpkg}={version} (about 140 MB) for {len(SOURCE_FILES)} source files")
    tmp = cache / "src" / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    deb = _download(srcpkg, version, tmp)
    members = " ".join(f"{srcpkg}/{path}" for path, _, _ in SOURCE_FILES)
    _sh(
        f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/src/{srcpkg}.tar.xz "
        f"| tar -xJ -C {tmp} {members}"
    )
    out.mkdir(parents=True, exist_ok=True)
    for path, name, _ in SOURCE_FILES:
        shutil.copy2(tmp / srcpkg / path, out / name)
    shutil.rmtree(tmp)  # the .deb is 140 MB and these few files are all we need
    return out


def _build_modules(kernel_release: str, src: Path, build: Path) -> None:
    headers = Path(f"/usr/src/linux-headers-{kernel_release}")
    if not (headers / "Makefile").is_file():
        raise MissingPrerequisite(f"{headers} missing: install linux-headers-{kernel_release}")
    build.mkdir(parents=True)
    for _, name, script in SOURCE_FILES:
        if script is None:
            shutil.copy2(src / name, build / name)
            continue
        r = subprocess.run(
            [sys.executable, str(KERNEL_DIR / script), str(src / name), str(build / name)],
            text=True,
            capture_output=True,
            check=False,
        )
        if r.returncode:
            raise PrepareError(
                f"{script} does not apply to Debian's {src.name} {name}: {r.stderr.strip()}\n"
                "The kernel source changed: update the patch (tests/vm/kernel/) for this kernel."
            )
    (build / "Kbuild").write_text(KBUILD)
    r = subprocess.run(
        ["make", "-s", "-C", str(headers), f"M={build}", "modules"],
        text=True,
        capture_output=True,
        check=False,
    )
    if r.returncode:
        raise PrepareError(
            f"building the patched modules failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        )
    for ko in REBUILT:
        vermagic = _run(["modinfo", "-F", "vermagic", str(build / ko)]).stdout.split()[0]
        if vermagic != kernel_release:
            raise PrepareError(f"{ko} built for {vermagic}, not {kernel_release}")


def _module_closure(root: Path, kernel_release: str, names: list[str]) -> list[str]:
    """Paths (relative to root) of the modules `names` need, dependencies first; fails loudly if
    one is missing from the extracted subtrees."""
    out: list[str] = []
    for name in names:
        r = subprocess.run(
            ["modprobe", "-d", str(root), "-S", kernel_release, "--show-depends", name],
            text=True,
            capture_output=True,
            check=False,
        )
        if r.returncode:
            raise PrepareError(
                f"module {name} cannot be resolved in the guest's module tree: {r.stderr.strip()}"
            )
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                rel = str(Path(parts[1]).relative_to(root))
                if rel not in out:
                    out.append(rel)
    return out


def _check_all_deps(root: Path, kernel_release: str) -> None:
    """Every extracted module's dependencies are in the tree, so udev's modalias loading of any
    hid-*.ko in the guest cannot fail for a module we left out."""
    moddir = root / "lib" / "modules" / kernel_release
    names = {p.name.split(".ko")[0].replace("-", "_") for p in moddir.rglob("*.ko*")}
    missing: set[str] = set()
    for line in (moddir / "modules.dep").read_text().splitlines():
        _, _, deps = line.partition(":")
        for d in deps.split():
            n = Path(d).name.split(".ko")[0].replace("-", "_")
            if n not in names:
                missing.add(n)
    if missing:
        raise PrepareError(f"modules depend on modules not extracted: {sorted(missing)}")


def _build_image(
    kernel_release: str, version: str, key_dir: Path, cache: Path, log: Callable[[str], None]
) -> dict[str, float]:
    t: dict[str, float] = {}
    t0 = time.monotonic()
    tmp = key_dir.with_name(key_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    deb = _download(f"linux-image-{kernel_release}", version, cache / "debs")
    t["download_kernel_s"] = time.monotonic() - t0

    t1 = time.monotonic()
    root = tmp / "root"
    root.mkdir()
    wanted = " ".join(
        [f"./boot/vmlinuz-{kernel_release}", f"./lib/modules/{kernel_release}/modules.*"]
        + [f"./lib/modules/{kernel_release}/kernel/{s}" for s in MODULE_SUBTREES]
    )
    # tar complains about subtrees a future kernel no longer has; the dependency check below is
    # what decides whether the tree is usable
    _sh(
        f"dpkg-deb --fsys-tarfile {deb} | tar -x --wildcards -C {root} {wanted} 2>/dev/null || true"
    )
    if not (root / "boot" / f"vmlinuz-{kernel_release}").is_file():
        raise PrepareError(f"{deb.name} has no boot/vmlinuz-{kernel_release}")
    t["extract_kernel_s"] = time.monotonic() - t1

    t2 = time.monotonic()
    src = _kernel_sources(kernel_release, version, cache, log)
    t["kernel_source_s"] = time.monotonic() - t2

    t3 = time.monotonic()
    _build_modules(kernel_release, src, tmp / "build")
    moddir = root / "lib" / "modules" / kernel_release
    for ko, rel in REBUILT.items():
        if not (moddir / rel).is_file():
            raise PrepareError(
                f"Debian's kernel package has no {rel}: the tier expects to replace it"
            )
        shutil.copy2(tmp / "build" / ko, moddir / rel)
    _run(["depmod", "-b", str(root), kernel_release])
    _check_all_deps(root, kernel_release)
    _module_closure(
        root, kernel_release, GUEST_MODULES
    )  # resolvable, or fail now rather than in the guest
    t["build_modules_s"] = time.monotonic() - t3

    t4 = time.monotonic()
    vmlinuz = (root / "boot" / f"vmlinuz-{kernel_release}").read_bytes()
    start = vmlinuz.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise PrepareError("the bzImage has no XZ payload (Debian changed the kernel compression?)")
    # the bzImage's payload is the ELF vmlinux: booting it directly (PVH entry) skips real mode
    # and the XZ decompression, which is seconds under TCG
    (tmp / "vmlinux").write_bytes(lzma.LZMADecompressor().decompress(vmlinuz[start:]))
    _make_initramfs(root, kernel_release, tmp)
    t["initramfs_s"] = time.monotonic() - t4
    shutil.rmtree(tmp / "build")
    shutil.rmtree(root / "boot")
    info = {"kernel_release": kernel_release, "package_version": version, "timings": t}
    (tmp / "image.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(key_dir, ignore_errors=True)
    tmp.rename(key_dir)
    return t


def _make_initramfs(root: Path, kernel_release: str, out: Path) -> None:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        raise MissingPrerequisite("/bin/busybox missing: install busybox-static")
    stage = out / "initramfs.d"
    for d in ("bin", "sbin", "proc", "sys", "dev", "host", "newroot", "ovl"):
        (stage / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, stage / "bin" / "busybox")
    moddir = f"lib/modules/{kernel_release}"
    for rel in _module_closure(root, kernel_release, INITRAMFS_MODULES):
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, stage / rel)
    for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy2(root / moddir / f, stage / moddir / f)
    _run(["depmod", "-b", str(stage), kernel_release])
    shutil.copy2(KERNEL_DIR / "init", stage / "init")
    (stage / "init").chmod(0o755)
    _sh(f"cd {stage} && find . | cpio -o -H newc --quiet | gzip -1 > {out / 'initramfs.cpio.gz'}")
    shutil.rmtree(stage)


def prepare(
    install: bool = False, rebuild: bool = False, log: Callable[[str], None] = lambda s: None
) -> Image:
    """Make sure a guest image for Debian's current kernel exists in the cache; return it."""
    cache = cache_root()
    t0 = time.monotonic()
    for tool in ("apt-cache", "apt-get", "dpkg-query", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise MissingPrerequisite(f"{tool} not found: the tier is built from Debian packages")
    kernel_release, version = kernel_package(install, log)
    ensure_packages(kernel_release, install, log)
    t_packages = time.monotonic() - t0
    if not Path("/usr/share/qemu/qboot.rom").is_file():
        raise MissingPrerequisite(
            "/usr/share/qemu/qboot.rom missing (qemu-system-x86 / qemu-system-data)"
        )
    key_dir = cache / "images" / f"{kernel_release}_{version}_{build_inputs_hash()}"
    built = False
    if rebuild or not (key_dir / "image.json").is_file():
        log(f"building the guest image for {kernel_release} ({version}) in {key_dir}")
        _build_image(kernel_release, version, key_dir, cache, log)
        built = True
    info = json.loads((key_dir / "image.json").read_text())
    info["prepare_s"] = round(time.monotonic() - t0, 1)
    info["packages_s"] = round(t_packages, 1)
    info["built_now"] = built
    return Image(
        kernel_release=kernel_release,
        package_version=version,
        directory=key_dir,
        vmlinux=key_dir / "vmlinux",
        initramfs=key_dir / "initramfs.cpio.gz",
        modules_root=key_dir / "root",
        info=info,
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--install", action="store_true", help="apt-get install missing Debian packages (root)"
    )
    ap.add_argument("--rebuild", action="store_true", help="rebuild the image even if cached")
    a = ap.parse_args()
    t0 = time.monotonic()

    def log(s: str) -> None:
        print(f"[vmimage {time.monotonic() - t0:6.1f}s] {s}", flush=True)

    try:
        img = prepare(install=a.install, rebuild=a.rebuild, log=log)
    except PrepareError as e:
        print(f"[vmimage] FAILED: {e}", file=sys.stderr)
        return 1
    log(
        f"ready: {img.directory} ({'built now' if img.info['built_now'] else 'cached'}; "
        f"packages {img.info['packages_s']}s, total {img.info['prepare_s']}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
