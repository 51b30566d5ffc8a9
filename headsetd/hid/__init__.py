"""The HID layer: descriptor model, report decoding, recordings and the transport seam."""
