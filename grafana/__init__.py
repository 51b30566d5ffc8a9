"""headsetd's Grafana side: the boards as code (boards.py), the generator of the committed JSON
(build.py), provisioning examples and a static preview page.

Never imported by the daemon: the headsetd package does not depend on grafana-foundation-sdk
(it is the `grafana` extra).
"""
