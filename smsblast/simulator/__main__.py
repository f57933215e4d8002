"""``python -m smsblast.simulator``: same as ``smsblast simulate``."""

import sys

from smsblast.simulator.cli import simulate_main

sys.exit(simulate_main(None))
