"""headsetd: headset telemetry for contact-center Linux workstations."""

__version__ = "0.1.0"
