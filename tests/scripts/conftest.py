"""The gpu-check scripts are plain modules under scripts/ (run as `python scripts/x.py`, which
puts scripts/ on sys.path); the tests import them the same way."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
