"""What a benchmark measured: the commit, and the files of src/ changed since (measured as
they were), for the first line of its results file."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def source_state() -> str:
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %cI"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--short", "--", "src"], capture_output=True, text=True
    ).stdout.split("\n")
    edits = ", ".join(line[3:] for line in changed if line.strip()) or "none"
    return f"headend at {head.stdout.strip()}; src/ changed since: {edits}"
