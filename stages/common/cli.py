"""What every stage script shares at its entry point: one clean line for a user's mistake."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


class StageError(ValueError):
    """A problem the user can fix (params, data, missing files); shown without a traceback."""


def run_stage(main: Callable[[], None], script: str) -> None:
    """Run a stage's main(); a StageError exits 1 with `<stage>: error: <message>`."""
    stage = Path(script).stem
    try:
        main()
    except StageError as err:
        sys.exit(f"{stage}: error: {err}")
