"""Run the command line: ``python -m requests_refresh demo``."""

import sys

from .cli import main

sys.exit(main())
