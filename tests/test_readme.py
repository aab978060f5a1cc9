"""The README's "Getting the first token" examples run as they are."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section_examples(title: str) -> list[str]:
    """The ```python blocks of the README section ``title``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


EXAMPLES = section_examples("Getting the first token")


def test_the_section_has_its_examples() -> None:
    """Client credentials, device and browser examples are all there."""
    joined = "\n".join(EXAMPLES)
    for name in ("ClientCredentialsGrant", "device_login", "browser_login"):
        assert name in joined


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda code: code.split("(")[0][-30:])
def test_example_runs(example: str, tmp_path: Path) -> None:
    """The example runs to completion in a fresh interpreter (in an empty directory)."""
    result = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if "ClientCredentialsGrant" in example:
        assert result.stdout.strip() == "True"
    elif "device_login" in example:
        assert (tmp_path / "tokens.json").exists()
    else:
        assert "access_token=<redacted>" in result.stdout
