"""Progress display for long CLI steps: a spinner on a terminal, nothing elsewhere."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def stage(description: str, *, spinner: bool = True) -> Iterator[None]:
    """Show a spinner with ``description`` on stderr while the block runs, if stderr is a terminal.

    The spinner is left out when ``spinner`` is false (the block may prompt), when
    ``NO_COLOR`` is set, or when stderr is not a terminal, so logs and CI output stay
    plain. Each stage is also logged at INFO.
    """
    logger.info("%s", description)
    if not spinner or not sys.stderr.isatty() or os.environ.get("NO_COLOR"):
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(description):
        yield
