"""Small real plans written into a temp folder for the core tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

BASE = """\
name: rehearsal
blue:
  database: {engine: sqlite, path: blue.db}
green:
  database: {engine: sqlite, path: green.db}
traffic:
  driver: file
  state_file: split.json
phases:
  - {name: validation, green: 5, soak: 0s}
  - {name: limited, green: 20, soak: 0s}
  - {name: ab-test, green: 50, soak: 0s}
  - {name: majority, green: 80, soak: 0s}
  - {name: complete, green: 100, soak: 0s}
rollback:
  drain_timeout: 5s
  gradual_soak: 0s
journal:
  path: journal.db
tick: 0.1s
"""


def write_plan(folder: Path, text: str = BASE, name: str = "plan.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path
