"""The service files shipped inside the package as `headsetd.units` (pyproject maps this folder).

Owns nothing but data: the system and user units, the sysusers.d file and the udev rule, read
by `headsetd install-units`. Never holds code: these files are edited here, in systemd/.
"""
