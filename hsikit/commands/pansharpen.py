"""``hsikit pansharpen``: fuse a hyperspectral/multispectral cube with a PAN image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``pansharpen`` command to the CLI."""

    @app.command()
    def pansharpen(
        hs: Annotated[Path, typer.Argument(help="Cube to sharpen (any format hsikit reads), e.g. EnMAP 30 m.")],
        pan: Annotated[Path, typer.Argument(help="One-band PAN on a grid RATIO times finer (same CRS, aligned).")],
        out: Annotated[Path, typer.Argument(help="Output GeoTIFF (COG, written atomically) on the PAN grid.")],
        method: Annotated[str, typer.Option(
            "--method", help="bicubic, gsa, bt-h, mtf-glp, mtf-glp-fs or mtf-glp-hpm.")] = "mtf-glp-fs",
        ratio: Annotated[Optional[int], typer.Option(
            "--ratio", help="Scale factor; default: from the grids (given, it must agree with them).")] = None,
        evaluate: Annotated[Optional[str], typer.Option(
            "--evaluate", help="Also score the result: 'reduced' (Wald: Q2n, ERGAS, SAM) or 'full' "
            "(no reference: D_lambda Khan, D_s, HQNR, D_S^R, D_rho).")] = None,
        gnyq: Annotated[float, typer.Option("--gnyq", help="MTF gain at Nyquist of the cube's bands.")] = 0.3,
        bands: Annotated[str, typer.Option(help="Bands of the cube: all, valid, torchgeo202 or a list.")] = "all",
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
        tile: Annotated[int, typer.Option(help="Tile edge in PAN pixels.")] = 512,
        overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing output.")] = True,
    ) -> None:
        """Pansharpen a cube with a PAN: classical CS/MRA methods, output on the PAN grid with the cube's bands.

        The grids are checked first (same CRS, PAN pixel = cube pixel / ratio, aligned corners and
        extents). Values are physical (reflectance x 10000 with a scale tag becomes 0-1); nodata stays
        NaN. See docs/pansharpen.md.

        Examples:

            hsikit pansharpen enmap_30m.tif pan_10m.tif sharp_10m.tif --method mtf-glp-fs

            hsikit pansharpen ms.tif pan.tif sharp.tif --method gsa --evaluate full
        """
        from hsikit.pansharpen.api import pansharpen as run

        res = run(hs, pan, method, out, ratio, bands=bands, gnyq=gnyq, evaluate=evaluate, device=device,
                  tile=tile, overwrite=overwrite, progress=True)
        typer.echo(res.summary())
