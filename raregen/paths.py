"""Where the repository is: :data:`ROOT` (the folder holding ``raregen/``, ``migrations/`` and,
by default, ``instance/``). Imports nothing of RareGen, so any module may use it."""

from __future__ import annotations

from pathlib import Path

#: The repository folder (the parent of the ``raregen`` package).
ROOT = Path(__file__).resolve().parent.parent
