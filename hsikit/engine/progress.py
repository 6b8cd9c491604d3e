"""Progress reporting for long runs: a bar on a terminal, a callback for GUIs (QGIS), or nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


class Progress:
    """Counts finished units and reports them.

    Parameters
    ----------
    total
        Number of units (tiles).
    mode
        True: a tqdm bar on stderr, only when stderr is a terminal; False: silent; a callable
        ``(done, total) -> bool | None``: called after each update; returning False asks to cancel.
    description
        Bar label.
    """

    def __init__(self, total: int, mode: bool | Callable[[int, int], bool | None], description: str = "") -> None:
        self.total = total
        self.done = 0
        self.callback = mode if callable(mode) else None
        show = mode is True and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=description, unit="tile", file=sys.stderr, leave=False) if show else None

    def update(self, n: int = 1) -> bool | None:
        """Add ``n`` finished units; returns the callback's answer (False = cancel)."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is not None:
            return self.callback(self.done, self.total)
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
