"""``hsikit degrade``: make test inputs from a clean scene (noise recipes, blur + decimation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``degrade`` command to the CLI."""

    @app.command()
    def degrade(
        src: Annotated[Path, typer.Argument(help="Clean input scene (any format hsikit reads).")],
        dst: Annotated[Path, typer.Argument(help="Output: .tif (COG), .nc or .zarr.")],
        noise: Annotated[Optional[str], typer.Option(
            "--noise", help="Noise spec: gaussian:0.1, gaussian:50/255, blind, noniid, noniid:0.1-0.3, "
            "poisson:GAIN,READ, stripe, deadline, impulse, mixture, complex; chain with + (noniid+stripe); "
            "options as key=value (stripe:bands=5,protocol=train).")] = None,
        blur_ratio: Annotated[Optional[int], typer.Option(
            "--blur-ratio", help="Blur with a Gaussian MTF and keep every r-th pixel (Wald protocol).")] = None,
        gnyq: Annotated[float, typer.Option("--gnyq", help="MTF gain at the low-resolution Nyquist frequency.")] = 0.3,
        srf: Annotated[Optional[str], typer.Option(
            "--srf", help="Simulate other bands first: a sensor (sentinel2, enmap, aviris) through Gaussian SRFs, "
            "or pan / pan:LO-HI (flat response, nm).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same output).")] = 0,
        value_scale: Annotated[str, typer.Option(
            "--value-scale", help="Physical value that noise parameters call 1 (10000 for reflectance x 10000 "
            "files without a scale tag), or 'max' (the cube's peak value, as on min-max normalised cubes).")] = "1",
        bands: Annotated[str, typer.Option(help="Bands to keep first: all, valid, torchgeo202 or a list.")] = "all",
        overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing output.")] = True,
    ) -> None:
        """Degrade a scene: spectral response, blur + decimation, noise (in that order), keeping georeference.

        Values are physical (int16 x 10000 reflectance becomes 0-1); nodata stays nodata. The output is
        float32, written atomically. Recipes follow the QRNN3D/HSDT benchmark (sigma on the 0-255 scale
        written as 50/255), see docs/data.md.

        Examples:

            hsikit degrade clean.tif noisy.tif --noise gaussian:0.1 --seed 0

            hsikit degrade clean.tif test_mixture.tif --noise mixture

            hsikit degrade enmap.tif enmap_lr.tif --blur-ratio 4 --noise gaussian:0.005

            hsikit degrade enmap.tif s2_like.tif --srf sentinel2 --blur-ratio 2

            hsikit degrade enmap.tif pan.tif --srf pan:450-900
        """
        import time

        from hsikit.data.degrade import degrade_cube, parse_noise
        from hsikit.errors import UsageError
        from hsikit.io import open_cube, output_format, save_cube
        from hsikit.io.atomic import check_output

        if noise is None and not blur_ratio and srf is None:
            raise UsageError("nothing to do: give --noise, --blur-ratio and/or --srf")
        recipe = parse_noise(noise) if noise is not None else None
        fmt = output_format(dst)
        check_output(dst, overwrite=overwrite)
        t0 = time.perf_counter()
        cube = open_cube(src, bands=bands)
        try:
            scale: float | str = float(value_scale)
        except ValueError:
            scale = value_scale
        out = degrade_cube(cube, recipe, blur_ratio=blur_ratio, gnyq=gnyq, seed=seed, value_scale=scale, srf=srf)
        save_cube(out, dst, format=fmt, overwrite=overwrite)
        typer.echo(f"wrote {dst} ({out.attrs['degradation']}; {out.sizes['y']}x{out.sizes['x']} px) "
                   f"in {time.perf_counter() - t0:.1f} s")
