"""The USB layer: a device's descriptors (sysfs `descriptors` bytes) as records, with its USB
Audio Class functions, and their description for `headsetd inspect`. Never opens a device.
"""
