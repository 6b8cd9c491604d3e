"""Land-cover classification: labels, spatially disjoint splits, baselines, MorpMamba, class maps.

``hsikit.classify(scene, labels, out, model=...)`` fits (or loads) a classifier, scores it on
held-out blocks and writes a georeferenced class map; ``hsikit.fit_classifier(...)`` fits on one or
several labelled scenes. See :mod:`hsikit.classify.api`.

This package is also callable: once it is imported, the attribute ``hsikit.classify`` is this
package (Python binds sub-packages over the lazy API function of the same name), so calling it
forwards to :func:`hsikit.classify.api.classify`.
"""

from __future__ import annotations

from hsikit._callable import callable_package


callable_package(__name__, "hsikit.classify.api", "classify")
