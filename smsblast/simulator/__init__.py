"""SMSC simulator: a fast, scriptable SMPP server for tests and load tests.

``async with Simulator(profile) as smsc:`` listens on ``smsc.host:smsc.port``;
``smsc.stats()`` is the JSON stats document. See docs/simulator.md.
"""

from smsblast.simulator.profile import NO_ANSWER, Profile, load_profile
from smsblast.simulator.server import Simulator

__all__ = ["NO_ANSWER", "Profile", "Simulator", "load_profile"]
