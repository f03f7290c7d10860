"""``python -m nwcd``: the same as the ``nwcd`` command."""

import sys

from nwcd.cli import main

sys.exit(main())
