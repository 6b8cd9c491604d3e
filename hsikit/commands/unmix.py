"""``hsikit unmix``: endmembers and abundance maps of a scene (a thin door onto :func:`hsikit.unmix.api.unmix`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``unmix`` command to ``app``."""

    @app.command()
    def unmix(
        src: Annotated[Path, typer.Argument(help="Input scene (any format hsikit reads).")],
        dst: Annotated[Path, typer.Argument(help="Output abundance GeoTIFF (COG); the endmember CSV and PNG go next to it.")],
        endmembers: Annotated[str, typer.Option("--endmembers", "-k", help="Number of endmembers K, or 'auto' (estimated with --k-method).")] = "auto",
        method: Annotated[str, typer.Option(help="vca-fcls, nfindr-fcls, atgp-fcls, sivm-fcls (or -nnls/-ucls), rrlbs, autoencoder; with --library: sunsal, fcls, nnls, ucls.")] = "vca-fcls",
        library: Annotated[Optional[Path], typer.Option(help="Spectral library (.csv or ENVI .sli) for sunsal/fcls/nnls/ucls.")] = None,
        seed: Annotated[int, typer.Option(help="Seed of every random choice (reproducible runs).")] = 0,
        k_method: Annotated[str, typer.Option("--k-method", help="How 'auto' counts endmembers: hysime, hfc or nwhfc.")] = "hysime",
        lam: Annotated[Optional[float], typer.Option(help="Sparsity weight of rrlbs (relative) or sunsal (data units squared).")] = None,
        epochs: Annotated[Optional[int], typer.Option(help="Training steps of the autoencoder.")] = None,
        device: Annotated[Optional[str], typer.Option(help="Torch device, e.g. cuda (default: cpu).")] = None,
        threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (1 is fastest on a busy machine).")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace existing outputs.")] = True,
    ) -> None:
        """Unmix a scene: endmember spectra + one abundance band per endmember + a residual RMSE band.

        Writes DST (GeoTIFF/COG, georeferenced like SRC, bands named endmember_1..K or after the library
        spectra, last band residual_rmse, NaN where SRC is nodata), DST_endmembers.csv (wavelength and
        one column per endmember) and DST_endmembers.png (plot of the spectra).

        Examples:

            hsikit unmix scene.tif fractions.tif --endmembers 4 --method vca-fcls

            hsikit unmix scene.tif fractions.tif --endmembers auto --method rrlbs --seed 1

            hsikit unmix scene.tif fractions.tif --method sunsal --library minerals.sli --lam 1e-3
        """
        import torch

        from hsikit.errors import UsageError
        from hsikit.unmix.api import unmix as run

        if threads is not None:
            if threads < 1:
                raise UsageError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)

        k: int | str
        if endmembers.strip().lower() == "auto":
            k = "auto"
        else:
            try:
                k = int(endmembers)
            except ValueError:
                raise UsageError(f"--endmembers must be an integer or 'auto', got {endmembers!r}") from None
        opts: dict[str, object] = {}
        if lam is not None:
            if method not in ("rrlbs", "sunsal"):
                raise UsageError("--lam applies to --method rrlbs or sunsal")
            opts["lam"] = lam
        if epochs is not None:
            if method != "autoencoder":
                raise UsageError("--epochs applies to --method autoencoder")
            opts["epochs"] = epochs
        result = run(src, k, method=method, library=library, out=dst, seed=seed, k_method=k_method,
                     device=device, overwrite=overwrite, **opts)
        info = result.info
        sample = (f", endmembers from every {info['sample_step']}th row and column ({info['sample_pixels']} pixels)"
                  if "sample_step" in info else "")
        typer.echo(
            f"wrote {dst} ({info['n_endmembers']} endmembers + residual_rmse, {method}, K {info['k_source']}, "
            f"{info['valid_pixels']} valid pixels{sample}) in {info['seconds']:.1f} s; "
            f"mean residual RMSE {float(result.residual_rmse.mean()):.4g}"
        )
        for key in ("endmembers_csv", "endmembers_png"):
            typer.echo(f"wrote {result.paths[key]}")
