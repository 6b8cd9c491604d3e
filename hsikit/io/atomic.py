"""Atomic outputs: write to a temporary name in the destination folder, rename on success.

An existing output is replaced only after the new one is complete; on any error the temporary
file (or folder) is removed and the previous output stays as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hsikit.errors import OutputError


def check_output(path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Validate an output path before any work is done: folder exists, overwrite allowed."""
    p = Path(path)
    if not p.parent.exists():
        raise OutputError(f"output folder {str(p.parent)!r} does not exist", p)
    if p.exists() and not overwrite:
        raise OutputError("output exists (use --overwrite to replace it)", p)
    if p.is_dir() and p.suffix.lower() != ".zarr":
        raise OutputError("output is a folder", p)
    return p


def temporary_sibling(path: Path, tag: str = "tmp") -> Path:
    """A unique hidden name next to ``path`` with the same suffix (GDAL picks drivers by suffix)."""
    return path.with_name(f".{path.stem}.{tag}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)
    for side in (p.with_name(p.name + ".aux.xml"), p.with_name(p.name + ".ovr")):
        side.unlink(missing_ok=True)


def replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` over ``final`` (files atomically; folders via a short-lived backup name)."""
    if tmp.is_dir() and final.exists():
        backup = temporary_sibling(final, "old")
        os.replace(final, backup)
        os.replace(tmp, final)
        _remove(backup)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    Examples
    --------
    >>> with atomic_output("out.tif") as tmp:  # doctest: +SKIP
    ...     write_everything(tmp)
    """
    final = check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
