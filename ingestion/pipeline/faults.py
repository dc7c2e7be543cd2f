"""Fault injection for the reliability test (kill a run mid-merge); inert unless PRODPLAN_FAULT_PAUSE is set."""

from __future__ import annotations

import os
import time
from pathlib import Path


def fault_point(name: str) -> None:
    """Fault injection for the kill-mid-merge test: PRODPLAN_FAULT_PAUSE='<point>:<marker file>' pauses there.

    Unset in every real deployment; the reliability test sets it on a subprocess it then kills."""
    spec = os.environ.get("PRODPLAN_FAULT_PAUSE", "")
    if spec and spec.rsplit(":", 1)[0] == name:
        Path(spec.rsplit(":", 1)[1]).write_text(str(os.getpid()))
        time.sleep(120)
