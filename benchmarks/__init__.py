"""Benchmarks of requests-refresh against plain requests and its peers.

Run ``python -m benchmarks`` from the repository root (``--help`` for the options). The
peers come from the ``bench`` extra: ``pip install -e '.[bench]'``.
"""
