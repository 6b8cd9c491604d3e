"""Class-map styling: the colour table written into the GeoTIFF and a QGIS ``.qml`` style beside it.

QGIS loads ``<map>.qml`` automatically when it opens ``<map>.tif``, so the map opens as a paletted
layer with the class names in the legend.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

#: Qualitative palette (Paul Tol's "muted" + "bright" schemes), RGB; code k gets entry (k - 1) % len.
PALETTE = (
    (204, 102, 119), (51, 34, 136), (221, 204, 119), (17, 119, 51), (136, 204, 238), (136, 34, 85),
    (68, 170, 153), (153, 153, 51), (170, 68, 153), (102, 17, 0), (68, 119, 170), (238, 102, 119),
    (34, 136, 51), (204, 187, 68), (102, 204, 238), (170, 51, 119), (187, 187, 187), (0, 68, 136),
)


def class_colour(code: int) -> tuple[int, int, int]:
    """RGB of class ``code`` (>= 1)."""
    return PALETTE[(int(code) - 1) % len(PALETTE)]


def colormap(codes: list[int]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: 0 (unclassified / nodata) transparent, each code its palette colour."""
    table = {0: (0, 0, 0, 0)}
    table.update({int(c): (*class_colour(c), 255) for c in codes})
    return table


def write_qml(path: str | os.PathLike, codes: list[int], names: list[str]) -> Path:
    """Write a QGIS paletted-renderer style for band 1 with one legend entry per class."""
    entries = "\n".join(
        f'        <paletteEntry value="{int(c)}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" label={quoteattr(str(n))}/>'
        for c, n in zip(codes, names)
        for r, g, b in [class_colour(c)]
    )
    text = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""
    p = Path(path)
    p.write_text(text)
    return p
