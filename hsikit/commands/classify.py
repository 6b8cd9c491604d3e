"""``hsikit classify``: fit or load a classifier, report held-out accuracy, write a class map."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _parse_names(text: str | None) -> dict[int, str] | None:
    """``"1=Roof,2=Pavement"`` -> {1: "Roof", 2: "Pavement"}."""
    if not text:
        return None
    from hsikit.errors import UsageError

    out = {}
    for item in text.split(","):
        code, sep, name = item.partition("=")
        if not sep or not code.strip().isdigit():
            raise UsageError(f"class name item {item!r} is not CODE=NAME")
        out[int(code)] = name.strip()
    return out


def format_scores(scores: dict) -> str:
    """Short text report: OA, AA, kappa and per-class F1."""
    lines = [f"OA {scores['oa']:.4f}  AA {scores['aa']:.4f}  kappa {scores['kappa']:.4f}  ({scores['pixels']} pixels)"]
    for c in scores["per_class"]:
        f1 = "   n/a" if c["f1"] is None else f"{c['f1']:.4f}"
        lines.append(f"  {c['code']:>3} {c['name'][:24]:<24} F1 {f1}  support {c['support']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def classify(
        scene: Annotated[Path, typer.Argument(help="Scene to classify (any format hsikit reads).")],
        out: Annotated[Path, typer.Argument(help="Class map (.tif): band 1 class, band 2 confidence; report JSON and QGIS .qml beside it.")],
        labels: Annotated[Optional[Path], typer.Option("--labels", help="Label raster on the scene grid (0 = unlabelled) or polygons (.gpkg/.shp/.geojson).")] = None,
        model: Annotated[str, typer.Option(help="Classifier: rf, svm, cnn3d or morpmamba (rf: best and fastest on the disjoint benchmarks, docs/benchmarks.md).")] = "rf",
        save_model: Annotated[Optional[Path], typer.Option("--save-model", help="Write the fitted model to this file (.safetensors).")] = None,
        load_model: Annotated[Optional[Path], typer.Option("--load-model", help="Classify with a saved model instead of fitting.")] = None,
        val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of labelled pixels held out by spatial blocks for the report.")] = 0.3,
        block: Annotated[Optional[int], typer.Option(help="Block edge in pixels of the spatial split (default: 8 x 8 blocks per scene).")] = None,
        epochs: Annotated[Optional[int], typer.Option(help="Maximum training epochs of the neural models.")] = None,
        device: Annotated[str, typer.Option(help="Torch device for neural models: cpu, cuda, cuda:1.")] = "cpu",
        seed: Annotated[int, typer.Option(help="Seed of the split and the fit.")] = 0,
        class_field: Annotated[Optional[str], typer.Option("--class-field", help="Class attribute of vector labels.")] = None,
        class_names: Annotated[Optional[str], typer.Option("--class-names", help="Names of the codes, e.g. 1=Roof,2=Pavement.")] = None,
        probabilities: Annotated[Optional[Path], typer.Option(help="Also write per-class probabilities to this .tif.")] = None,
    ) -> None:
        """Classify a scene: fit on its labels (or load a model), score on held-out blocks, write the map.

        The held-out pixels are whole spatial blocks, never inside a training patch, so the accuracy
        is not inflated by overlapping patches. Prints OA, AA, kappa and per-class F1 and writes them
        to OUT's .report.json.

        Examples:

            hsikit classify tile.tif map.tif --labels labels.tif --model rf --save-model rf.safetensors

            hsikit classify other_tile.tif map2.tif --load-model rf.safetensors --labels other_labels.tif

            hsikit classify scene.tif map.tif --labels polygons.gpkg --class-field landcover --model morpmamba
        """
        from hsikit.classify.api import classify as run

        report = run(scene, labels, out, model=model, load_model=load_model, save_model=save_model,
                     probabilities=probabilities, val_fraction=val_fraction, block=block, epochs=epochs,
                     device=device, seed=seed, class_field=class_field, class_names=_parse_names(class_names))
        typer.echo(f"model {report['model']}")
        if "scores" in report:
            typer.echo(f"scores on {report['scores_on']}:")
            typer.echo(format_scores(report["scores"]))
        pred = report["prediction"]
        typer.echo(f"wrote {out} ({pred['pixels']} px, {pred['pixels_per_second']:.0f} px/s) and {report['report_file']}")
