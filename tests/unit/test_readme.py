"""The README is a short story whose install and test commands are CI's own (``.ci/run``)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()


def commands(block: str) -> list[str]:
    """The commands of a bash block, comments and blank lines left out."""
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def test_the_readme_is_short_and_narrow():
    lines = README.splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    wide = [number for number, line in enumerate(lines, 1) if len(line) > 120]
    assert not wide, f"README.md lines over 120 characters: {wide}"


def test_the_install_and_test_commands_are_what_ci_runs():
    block = re.search(r"## Install and test\n\n```bash\n(.*?)```", README, re.S).group(1)
    readme = commands(block)
    ci = [" ".join(line.replace("python -m pip", "pip").replace("--quiet ", "").split())
          for line in commands(CI) if "pip install" in line or "pytest" in line]
    ci = [line for line in ci if "--upgrade pip" not in line]
    assert readme == ci, (readme, ci)
    assert ci[-1] == "python -m pytest" and CI.rstrip().endswith("python -m pytest")


def test_every_manual_page_the_readme_links_to_exists():
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", README)
    assert {"docs/training.md", "docs/data.md", "docs/decoding.md", "docs/service.md"} <= set(links)
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, missing
