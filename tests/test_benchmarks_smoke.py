"""The benchmark code itself works: ``python -m benchmarks --quick`` writes every table.

Timings are never asserted here: only that each section ran and produced its tables.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.timeout(240)
def test_quick_benchmarks_write_every_section(tmp_path: pathlib.Path) -> None:
    """The quick run exits 0 and its report has the four sections and their tables."""
    pytest.importorskip("psutil")
    output = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = output.read_text(encoding="utf-8")
    for heading in ("## 1. Fast path", "## 2. Refresh storm", "## 3. Cross-process", "## 4. Soak"):
        assert heading in report
    assert "| RefreshAdapter + MemoryTokenStore |" in report
    assert "### RefreshAdapter + MemoryTokenStore" in report
    assert "| RSS MiB |" in report
