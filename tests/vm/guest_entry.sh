#!/bin/bash
# Runs INSIDE the VM test guest, as root, in the host's filesystem (9p, read-only + tmpfs overlay),
# started by kernel/init. Owns the guest's system setup: configfs, systemd-udevd (real hotplug
# events for pyudev, module loading by modalias, /dev permissions), the USB gadget and host
# modules (dummy_hcd with $HVM_UDCS buses), then the guest pytest run whose reports go to $HVM_RUN.
# Never writes to the host outside $HVM_RUN (nothing else is writable through 9p).
set -u
# udevadm refuses to trigger/settle "in a chroot" (kernel/init chroots into the 9p root)
export SYSTEMD_IGNORE_CHROOT=1
RUN=${HVM_RUN:?}
. "$RUN/env.sh"
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "[guest $(up)s] $*"; }
log "entry: kernel $(uname -r), repo $HVM_REPO"

# The gadget side's own sound card (UAC2Gadget) is the virtual headset's far end, not a device of
# this "desktop": PulseAudio must leave it alone, or it holds the PCM the tests play the mic into.
mkdir -p /run/udev/rules.d
echo 'SUBSYSTEM=="sound", KERNEL=="card*", ATTR{id}=="UAC2Gadget*", ENV{PULSE_IGNORE}="1"' \
  > /run/udev/rules.d/70-headsetd-vm-gadget-audio.rules

modprobe configfs && mount -t configfs configfs /sys/kernel/config || { log "configfs FAILED"; exit 90; }
# udevd: the same daemon a desktop runs; it resolves group names (audio for /dev/snd/*, which
# PulseAudio in system mode needs) from the host's /etc/group
/lib/systemd/systemd-udevd --daemon --resolve-names=early 2> "$RUN/udevd.err" || { log "udevd FAILED"; exit 91; }
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle -t 60
log "udevd up"
# systemd resolves headsetd.service's DeviceAllow=char-hidraw from /proc/devices when the unit
# starts; hidraw's major exists only once hid.ko is loaded (logged for that question)
hidraw_major() { awk '$2 == "hidraw" { print $1 }' /proc/devices; }
before_hid=$(hidraw_major)
for m in "dummy_hcd num=$HVM_UDCS" libcomposite usb_f_hid usb_f_uac2 usbhid hid_generic snd_usb_audio; do
  # shellcheck disable=SC2086  # word splitting intended: module name + parameters
  modprobe $m || { log "modprobe $m FAILED"; exit 92; }
done
udevadm settle -t 60
log "modules loaded; UDCs: $(ls /sys/class/udc | tr '\n' ' ')"
log "hidraw major in /proc/devices: ${before_hid:-none} before hid.ko, $(hidraw_major) after"

ip link set lo up || { log "loopback FAILED"; exit 94; }  # headsetd serves /metrics on 127.0.0.1

cd "$HVM_REPO" || exit 93
mapfile -t ARGS < "$RUN/pytest-args"
export PATH="$HVM_BIN:$PATH" HEADSETD_VM_GUEST=1 HEADSETD_VM_RUN="$RUN" PYTHONUNBUFFERED=1 \
  PYTHONDONTWRITEBYTECODE=1
[ -n "$HVM_CI" ] && export CI="$HVM_CI"
log "pytest ${ARGS[*]}"
# no hypothesis plugin: no guest test uses it, and importing it costs seconds under TCG
"$HVM_PYTHON" -m pytest -p no:cacheprovider -p no:hypothesispytest -v -rfEs --tb=short "${ARGS[@]}"
rc=$?
log "pytest exit code $rc"
dmesg > "$RUN/dmesg.txt" 2>&1
exit $rc
