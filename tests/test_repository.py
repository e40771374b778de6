"""The repository is self-contained: nothing points outside it or to an issue tracker's numbers."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = (".py", ".md", ".toml", ".sh", ".cfg", ".txt", ".json")
FORBIDDEN = re.compile(r"\.\./shared|DESIGN\.md|\b[Ii]ssues? #?\d+\b")


def project_files():
    skip = {".venv", ".git", "runs", "data", "__pycache__", ".pytest_cache"}
    for path in ROOT.rglob("*"):
        if path.is_file() and path.suffix in TEXT and not skip.intersection(path.relative_to(ROOT).parts) \
                and not any(part.endswith(".egg-info") for part in path.parts):
            yield path


def test_no_file_points_outside_the_repository_or_to_issue_numbers():
    offenders = []
    for path in project_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line) and path != Path(__file__).resolve():
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_the_design_of_record_is_in_the_repository():
    design = (ROOT / "docs" / "design.md").read_text()
    for heading in ("Time and input alignment", "Integrators", "Conventions"):
        assert heading in design



def test_odernn_and_experiments_use_only_what_solvers_exports():
    """``solvers``' internals may move (they did: the method classes); its users import from its front."""
    root = Path(__file__).resolve().parents[1]
    internal = re.compile(r"^\s*(from solvers\.|import solvers\.)")
    offenders = [f"{path.relative_to(root)}:{number}"
                 for package in ("odernn", "experiments") for path in sorted((root / package).rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if internal.match(line)]
    assert not offenders, offenders
