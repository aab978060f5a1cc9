"""Markdown tables, pass/miss marks, and a description of the machine."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "PEER_DISTRIBUTIONS",
    "Section",
    "Table",
    "environment",
    "mark",
    "percentile",
    "spread",
]

#: The distributions whose versions the report names.
PEER_DISTRIBUTIONS = (
    "requests",
    "urllib3",
    "requests-oauthlib",
    "oauthlib",
    "authlib",
    "google-auth",
    "requests-oauth2client",
)


def mark(ok: bool) -> str:
    """The pass/miss mark printed next to a figure that has a target."""
    return "✅ pass" if ok else "❌ miss"


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``median (min–max)`` of ``values``."""
    if not values:
        return "n/a"
    return (
        f"{statistics.median(values):.{digits}f}"
        f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    )


@dataclasses.dataclass
class Table:
    """One markdown table with a title and notes under it."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Section:
    """A numbered part of the report: an introduction and its tables."""

    title: str
    intro: str = ""
    tables: list[Table] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        if self.intro:
            parts += [self.intro.strip(), ""]
        parts += [table.markdown() for table in self.tables]
        parts.append(f"_Section time: {self.seconds:.0f} s._\n")
        return "\n".join(parts)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH is fine here
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def load_line() -> str:
    """The load average now, as a line for the end of the report."""
    return f"_Load average at the end (1, 5, 15 min): {_load()}._\n"


def environment(command: str) -> str:
    """A markdown block naming the machine, Python, library versions and the date."""
    import requests_refresh

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- Date: {now}",
        f"- Command: `{command}`",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}",
        f"- Load average at start (1, 5, 15 min): {_load()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- requests-refresh: {requests_refresh.__version__} (commit {_git_commit()})",
    ]
    lines += [f"- {name}: {_version(name)}" for name in PEER_DISTRIBUTIONS]
    return "\n".join(lines) + "\n"
