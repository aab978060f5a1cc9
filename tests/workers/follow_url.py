"""A stand-in browser for ``$BROWSER``: follow the URL given on the command line with
requests, as a browser would, and exit."""

from __future__ import annotations

import sys

import requests

if __name__ == "__main__":
    answer = requests.get(sys.argv[1], timeout=30)
    sys.exit(0 if answer.ok else 1)
