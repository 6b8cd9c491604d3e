"""Task packages (and the module ``hsikit.describe``) that are also their API function.

``hsikit.denoise(...)`` is a lazy API function (see :mod:`hsikit`), but once any module of the
package ``hsikit.denoise`` is imported Python binds the package to the same attribute. So each task
package makes itself callable, forwarding to its API function: both spellings then do the same.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    """A module whose call forwards to ``_hsikit_api = (module, function)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, name = self.__dict__["_hsikit_api"]
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def callable_package(package: str, api_module: str, function: str) -> None:
    """Make the (already imported) ``package`` callable as ``api_module.function``."""
    mod = sys.modules[package]
    mod._hsikit_api = (api_module, function)
    mod.__class__ = _CallablePackage
