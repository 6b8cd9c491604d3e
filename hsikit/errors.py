"""One exception family for hsikit.

Every error that a user can cause (a missing file, a corrupt raster, a band-count mismatch, an
unknown model name) is raised as a subclass of :class:`HsikitError` with a message that names the
file (when there is one) and the problem. The CLI prints ``str(error)`` on one line and exits 2.
"""

from __future__ import annotations

import os


class HsikitError(Exception):
    """Base class: a problem with the user's input or request, not a bug in hsikit.

    Parameters
    ----------
    message
        What is wrong, in one sentence.
    path
        The file or folder concerned, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(HsikitError):
    """An input file is missing, unreadable, corrupt or not a raster of the expected kind."""


class MetadataError(HsikitError):
    """Spectral or geographic metadata is missing or inconsistent (wavelengths, CRS, grids)."""


class CubeValidationError(HsikitError):
    """A cube fails validation (non-monotonic wavelengths, NaNs, all-nodata bands, ...)."""


class OutputError(HsikitError):
    """An output cannot be written (missing folder, exists without overwrite, ...)."""


class UsageError(HsikitError):
    """An option value is invalid (unknown band preset, model name, format, ...)."""
