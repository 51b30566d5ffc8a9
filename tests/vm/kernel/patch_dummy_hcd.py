# SPDX-License-Identifier: GPL-2.0-or-later
# This file carries C code written for, and to be compiled into, the Linux kernel's
# drivers/usb/gadget/udc/dummy_hcd.c (GPL-2.0+, Copyright its authors, see that file).
# It is therefore under the kernel source's licence, not the project's.
# ruff: noqa: E101  (the C code keeps the kernel's tabs-then-spaces alignment)
"""Add real-time paced isochronous transfers to Debian's Linux 6.1 dummy_hcd.c.

Owns: turning the kernel source's dummy_hcd.c into a dummy_hcd that can carry USB Audio Class
streams (the stock one fails every iso URB: "The emulation does not include isochronous
transfers!"), for the VM test tier only.

Never: patches fuzzily. Every edit must match the source exactly once; if Debian's source has
moved on, this script stops with an error saying which edit no longer applies, so nobody tests
against a half-patched driver.

How: the six "-iso" endpoints that upstream keeps commented out are enabled. In dummy_timer an
isochronous URB completes when it is due (number_of_packets x interval after the previous URB
on that endpoint: real-time pacing at the hrtimer's granularity); each of its packets takes at
most one queued gadget request (empty packet if none is queued). No error, jitter or bandwidth
modelling: enough for snd-usb-audio and f_uac2 to stream exact samples.

usage: patch_dummy_hcd.py IN.c OUT.c
"""

from __future__ import annotations

import re
import sys

from patching import PatchError, replace_once, run

MARK = "headsetd VM test tier: isochronous support"


HELPER = r"""
/* {mark}: one gadget request per iso packet; called with dum->lock held */
static int dummy_iso_transfer(struct dummy *dum, struct urb *urb, struct dummy_ep *ep)
{
	int i, to_host = usb_urb_dir_in(urb);

	if (!urb->transfer_buffer)
		return -EINVAL;
	urb->actual_length = 0;
	for (i = 0; i < urb->number_of_packets; i++) {
		struct usb_iso_packet_descriptor *d = &urb->iso_frame_desc[i];
		struct dummy_request *req;
		u8 *buf = (u8 *)urb->transfer_buffer + d->offset;
		unsigned int len;

		d->actual_length = 0;
		d->status = 0;
		if (list_empty(&ep->queue))
			continue;	/* the gadget queued nothing: empty packet */
		req = list_first_entry(&ep->queue, struct dummy_request, queue);
		len = min_t(unsigned int, d->length, req->req.length - req->req.actual);
		if (to_host)
			memcpy(buf, (u8 *)req->req.buf + req->req.actual, len);
		else
			memcpy((u8 *)req->req.buf + req->req.actual, buf, len);
		req->req.actual += len;
		d->actual_length = len;
		urb->actual_length += len;
		req->req.status = 0;
		list_del_init(&req->queue);
		dummy_giveback(dum, &ep->ep, req);
	}
	return 0;
}

""".replace("{mark}", MARK)

TIMER_ISO = r"""		case PIPE_ISOCHRONOUS:
			/* {mark}: complete each URB when it is due */
			if (!urbp->iso_started) {
				ktime_t now = ktime_get();
				unsigned int us = urb->number_of_packets * urb->interval *
					(urb->dev->speed >= USB_SPEED_HIGH ? 125 : 1000);

				if (ktime_before(ep->iso_next, now) ||
				    ktime_after(ep->iso_next, ktime_add_us(now, 200000)))
					ep->iso_next = now;
				ep->iso_next = ktime_add_us(ep->iso_next, us);
				urbp->iso_due = ep->iso_next;
				urbp->iso_started = 1;
			}
			if (ktime_before(ktime_get(), urbp->iso_due))
				continue;	/* not due yet: the timer comes back */
			ep->last_io = jiffies;
			status = dummy_iso_transfer(dum, urb, ep);
			goto return_urb;
""".replace("{mark}", MARK)


def patch(src: str) -> str:
    if MARK in src:
        raise PatchError("dummy_hcd.c is already patched")
    # 1. the iso endpoints upstream keeps commented out
    src, n = re.subn(
        r'/\*\n(\tEP_INFO\("ep\d+in-iso",\n[^\n]*\n\tEP_INFO\("ep\d+out-iso",\n[^\n]*\n)\*/\n',
        r"\1",
        src,
    )
    if n != 3:
        raise PatchError(f"dummy_hcd.c: commented-out iso endpoints: expected 3 blocks, found {n}")
    # 2. pacing state per URB and per endpoint
    src = replace_once(
        src,
        "\tu32\t\t\tmiter_started;\n};",
        "\tu32\t\t\tmiter_started;\n\tktime_t\t\t\tiso_due;\n\tint\t\t\tiso_started;\n};",
        "struct urbp",
    )
    src = replace_once(
        src,
        "\tunsigned\t\t\tstream_en:1;\n};",
        "\tunsigned\t\t\tstream_en:1;\n\tktime_t\t\t\t\tiso_next;\n};",
        "struct dummy_ep",
    )
    src = replace_once(
        src,
        "\turbp->miter_started = 0;\n",
        "\turbp->miter_started = 0;\n\turbp->iso_started = 0;\n",
        "dummy_urb_enqueue",
    )
    # 3. the transfer helper, right before the timer that uses it
    anchor = "static enum hrtimer_restart dummy_timer(struct hrtimer *t)\n{"
    src = replace_once(src, anchor, HELPER + anchor, "dummy_timer")
    # 4. the timer's iso case, which upstream fails with -EINVAL
    old = re.findall(
        r"\t\tcase PIPE_ISOCHRONOUS:\n.*?status = -EINVAL;\t/\* fail all xfers \*/\n\t\t\tbreak;\n",
        src,
        re.S,
    )
    if len(old) != 1:
        raise PatchError(f"dummy_hcd.c: iso case in dummy_timer: expected 1, found {len(old)}")
    src = src.replace(old[0], TIMER_ISO, 1)
    return replace_once(
        src,
        '#define DRIVER_DESC\t"USB Host+Gadget Emulator"',
        f'#define DRIVER_DESC\t"USB Host+Gadget Emulator ({MARK})"',
        "DRIVER_DESC",
    )


if __name__ == "__main__":
    sys.exit(run(patch, sys.argv, __doc__ or ""))
