"""Every ```python block of README.md runs as a user would copy it: each in its own
process, with a timeout, in an empty temporary directory that it must leave empty.

A block that cannot run on its own says so, visibly, with an HTML comment on the line
right before it (the reason shows in the test's skip message)::

    <!-- example: skip (needs an OS keyring) -->
    ```python
    ...

Examples that would talk to a real API run against
:class:`requests_refresh.testing.AuthorizationServer` instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: Seconds an example may run.
TIMEOUT = 60

_FENCE = re.compile(r"^```(\w*)\s*$")
_SKIP = re.compile(r"^<!--\s*example:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->\s*$")
_MARKER = re.compile(r"^<!--\s*example:")


@dataclasses.dataclass(frozen=True)
class Example:
    """One ```python block: where it starts, its code, and why it is skipped (or None)."""

    line: int
    code: str
    skip: str | None


def examples(text: str) -> list[Example]:
    """The ```python blocks of a Markdown text, with their skip markers.

    Raises:
        ValueError: a block is not closed, or an ``<!-- example: ... -->`` marker is not
            a well-formed skip with a reason, right before a ```python block.
    """
    lines = text.splitlines()
    found: list[Example] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        if _MARKER.match(line):
            skip = _SKIP.match(line)
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if skip is None or not skip["reason"].strip():
                raise ValueError(f"line {number + 1}: write <!-- example: skip (reason) -->")
            if following.strip() != "```python":
                raise ValueError(f"line {number + 1}: a skip marker must precede ```python")
        fence = _FENCE.match(line)
        if fence is None:
            number += 1
            continue
        end = next((i for i in range(number + 1, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise ValueError(f"line {number + 1}: the code block is not closed")
        if fence[1] == "python":
            marker = _SKIP.match(lines[number - 1]) if number else None
            found.append(
                Example(
                    line=number + 1,
                    code="\n".join(lines[number + 1 : end]) + "\n",
                    skip=marker["reason"].strip() if marker else None,
                )
            )
        number = end + 1
    return found


def _params() -> list[object]:
    return [
        pytest.param(
            example,
            id=f"README.md:{example.line}" + (f" skip: {example.skip}" if example.skip else ""),
            marks=[pytest.mark.skip(reason=f"README.md:{example.line}: {example.skip}")]
            if example.skip
            else [],
        )
        for example in examples(README.read_text(encoding="utf-8"))
    ]


@pytest.mark.parametrize("example", _params())
def test_readme_example_runs_and_cleans_up(
    example: Example, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The block exits 0 within the timeout and leaves nothing in its working directory.

    A block that reads ``REDIS_URL`` gets the test session's own Redis server there.
    """
    script = tmp_path / "example.py"
    script.write_text(example.code, encoding="utf-8")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if "REDIS_URL" in example.code:
        environment["REDIS_URL"] = request.getfixturevalue("redis_server").url
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        pytest.fail(f"README.md:{example.line}: still running after {TIMEOUT} s: {exc.stdout!r}")
    assert result.returncode == 0, (
        f"README.md:{example.line} failed\n{result.stdout}\n{result.stderr}"
    )
    assert sorted(os.listdir(cwd)) == [], f"README.md:{example.line} left files behind"


def test_the_readme_has_runnable_examples() -> None:
    """The README's python blocks are found, and most of them run (few are skipped)."""
    found = examples(README.read_text(encoding="utf-8"))
    assert len(found) >= 3
    assert sum(example.skip is None for example in found) >= 3


def test_skip_markers_are_read_with_their_reason() -> None:
    """A skip comment right before a block skips it with its reason; other blocks run."""
    text = (
        "# t\n\n```python\nprint(1)\n```\n\n```bash\necho\n```\n\n"
        "<!-- example: skip (needs a real API) -->\n```python\nprint(2)\n```\n"
    )
    assert examples(text) == [
        Example(line=3, code="print(1)\n", skip=None),
        Example(line=12, code="print(2)\n", skip="needs a real API"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- example: skip () -->\n```python\nx\n```\n",
        "<!-- example: skip -->\n```python\nx\n```\n",
        "<!-- example: skip (why) -->\n\n```python\nx\n```\n",
        "<!-- example: skip (why) -->\n```bash\nx\n```\n",
        "```python\nx\n",
    ],
    ids=["empty-reason", "no-reason", "not-right-before", "not-python", "unclosed"],
)
def test_malformed_markers_and_blocks_are_errors(text: str) -> None:
    """A skip without a reason, or not right before a python block, is refused."""
    with pytest.raises(ValueError, match="line 1"):
        examples(text)
