"""`python -m loadtest SCENARIO [options]`: run one load-test scenario."""

from __future__ import annotations

import importlib
import sys

SCENARIOS = {
    "ceiling": "loadtest.ceiling",
    "e2e": "loadtest.e2e",
    "baseline": "loadtest.baseline",
    "paced": "loadtest.paced",
    "chaos": "loadtest.chaos",
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print("usage: python -m loadtest {" + ",".join(SCENARIOS) + "} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(SCENARIOS[sys.argv[1]])
    code: int = module.main(sys.argv[2:])
    return code


if __name__ == "__main__":
    sys.exit(main())
