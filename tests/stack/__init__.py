"""The e2e harness: a simulated fleet (headsetd/scenario.py) of real `headsetd run --replay`
daemons on loopback, scraped by real Prometheus, Alertmanager, agents and VictoriaMetrics with
the shipped files (headsetd/stack.py builds them; these are its pytest fixtures).

The interface for other tests (the Grafana boards' among them) is the session fixture
`fleet_prometheus`: `.url` is a Prometheus HTTP URL holding the scenario's data with the shipped
recording rules loaded, once every alert the scenario expects has fired; `.scenario` is the
`headsetd.scenario.Scenario` (workstations, site, team, what happens to each). tests/conftest.py
loads the fixtures (`pytest_plugins`); nothing needs to import them.
"""

from tests.stack.fixtures import FleetPrometheus, fleet_prometheus, fleet_stack

__all__ = ["FleetPrometheus", "fleet_prometheus", "fleet_stack"]
