"""``python -m smsblast``: the same as the ``smsblast`` command."""

import sys

from smsblast.cli import main

sys.exit(main())
