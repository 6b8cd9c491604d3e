"""JSON encoding of numpy values for reports and file headers: ``json.dumps(obj, default=json_default)``."""

from __future__ import annotations

from typing import Any

import numpy as np


def json_default(o: Any) -> Any:
    """numpy scalars -> Python scalars, arrays -> lists, anything else -> ``str``."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
