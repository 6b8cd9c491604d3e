"""Classification task API: fit a classifier from labelled scenes, score it on spatially disjoint
pixels, and write a georeferenced class map of a whole scene.

The one place where io (scenes, labels), the engine (streamed prediction) and the estimators meet;
the CLI (``hsikit classify``) and the Python API (``hsikit.classify``, ``hsikit.fit_classifier``)
call these functions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.classify.estimator import estimator_class
from hsikit.classify.features import SpectralPrep, extract_patches, physical_values, to_physical
from hsikit.classify.labels import CLASS_NAMES_TAG, Labels, labels_from_array, read_labels
from hsikit.classify.maps import colormap, write_qml
from hsikit.classify.modelfile import FittedClassifier
from hsikit.classify.split import block_split, class_weights, default_block
from hsikit.cube import BAND, X, Y, valid_pixel_mask
from hsikit.errors import InputError, UsageError
from hsikit.jsonable import json_default as _json_default

SceneLike = str | os.PathLike | xr.DataArray
LabelsLike = str | os.PathLike | np.ndarray | Labels
#: share of the training blocks set aside for early stopping / model selection
STOP_FRACTION = 0.2


def _open_scene(scene: SceneLike) -> xr.DataArray:
    if isinstance(scene, xr.DataArray):
        return scene
    from hsikit.io import open_cube

    return open_cube(scene)


def _labels_for(labels: LabelsLike, cube: xr.DataArray, class_field: str | None, class_names: dict[int, str] | None) -> Labels:
    if isinstance(labels, Labels):
        lab = labels
    elif isinstance(labels, np.ndarray):
        lab = labels_from_array(labels, cube)
    else:
        lab = read_labels(labels, cube, class_field=class_field)
    if lab.values.shape != (cube.sizes[Y], cube.sizes[X]):
        raise InputError(f"labels are {lab.values.shape} but the scene is {cube.sizes[Y]}x{cube.sizes[X]}", lab.source)
    if class_names:
        lab.names.update({int(k): str(v) for k, v in class_names.items()})
    return lab


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class _Scene:
    """A scene with its labels, valid-pixel mask and (lazily) its features."""

    def __init__(self, cube: xr.DataArray, labels: Labels) -> None:
        self.cube = cube
        self.labels = labels
        self.values = physical_values(cube)
        self.valid = valid_pixel_mask(self.values, np.nan)
        lab = labels.values.copy()
        lab[~self.valid] = 0
        self.lab = lab
        if not (lab > 0).any():
            raise InputError("no labelled pixel with data inside the scene (labels fall on nodata only)", labels.source)

    def spectra(self) -> np.ndarray:
        return self.values.reshape(self.values.shape[0], -1).T[self.valid.ravel()]


def _gather(scenes: list[_Scene], masks: list[np.ndarray], feats: list[np.ndarray], patch: int,
            index: dict[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches, class indices (-1 = class unknown to the model) and codes of the masked pixels."""
    xs, ys, cs = [], [], []
    for sc, m, f in zip(scenes, masks, feats):
        rows, cols = np.nonzero(m)
        if rows.size == 0:
            continue
        xs.append(extract_patches(f, rows, cols, patch))
        code = sc.lab[rows, cols]
        cs.append(code)
        lut = np.full(256, -1, np.int64)
        lut[list(index)] = list(index.values())
        ys.append(lut[code])
    if not xs:
        c = feats[0].shape[0] if feats else 0
        return np.zeros((0, c, patch, patch), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def score(predicted: np.ndarray, reference: np.ndarray, names: dict[int, str]) -> dict[str, Any]:
    """OA, AA, kappa, per-class recall/precision/F1 and the confusion matrix of class codes."""
    from hsikit.metrics.classification import confusion_matrix

    cm = confusion_matrix(np.asarray(predicted), np.asarray(reference), ignore_label=0)
    rec, prec, f1 = cm.recall(), cm.precision(), cm.f1()
    per = [{"code": int(c), "name": names.get(int(c), f"class_{int(c)}"), "support": int(s),
            "recall": _num(r), "precision": _num(p), "f1": _num(f)}
           for c, s, r, p, f in zip(cm.classes, cm.support, rec, prec, f1)]
    return {"pixels": cm.n, "oa": cm.overall_accuracy(), "aa": cm.average_accuracy(), "kappa": cm.kappa(),
            "per_class": per, "classes": [int(c) for c in cm.classes], "confusion": cm.matrix.tolist()}


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def fit_classifier(
    scenes: SceneLike | Sequence[SceneLike],
    labels: LabelsLike | Sequence[LabelsLike],
    *,
    model: str = "rf",
    val_fraction: float = 0.3,
    test: Sequence[tuple[SceneLike, LabelsLike]] | None = None,
    block: int | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    class_field: str | None = None,
    class_names: dict[int, str] | None = None,
    options: dict[str, Any] | None = None,
) -> FittedClassifier:
    """Fit a classifier on labelled scenes and score it on spatially disjoint held-out pixels.

    Parameters
    ----------
    scenes, labels
        One scene (path or cube) and its labels (label raster, vector file, ``(y, x)`` array or
        :class:`~hsikit.classify.labels.Labels`), or equal-length lists of them (e.g. several tiles).
    model
        ``rf`` (default: the best and fastest on the disjoint benchmarks), ``svm``, ``cnn3d`` or
        ``morpmamba``.
    val_fraction
        Share of the labelled pixels held out **by blocks** for the reported scores (0: none).
        Ignored when ``test`` is given.
    test
        ``(scene, labels)`` pairs held out entirely (train on some tiles, test on others).
    block
        Block edge [px] of the spatial split (default: an 8 x 8 grid of blocks per scene).
    epochs
        Maximum epochs of the neural models (early stopping may end sooner).
    device
        Torch device of the neural models (``cpu``, ``cuda``).
    seed
        Seed of the split and the fit.
    class_field, class_names
        Class attribute of vector labels; ``{code: name}`` overriding names from the label files.
    options
        Estimator configuration (e.g. ``{"patch": 7, "pca": 30}``, ``{"n_estimators": 300}``).

    Returns
    -------
    FittedClassifier
        With ``summary["heldout"]`` = :func:`score` on the held-out pixels (when there are any).
    """
    t0 = time.perf_counter()
    scene_list, label_list = _as_list(scenes), _as_list(labels)
    if len(scene_list) != len(label_list):
        raise UsageError(f"{len(scene_list)} scenes but {len(label_list)} label sets")
    cubes = [_open_scene(s) for s in scene_list]
    train = [_Scene(c, _labels_for(lab, c, class_field, class_names)) for c, lab in zip(cubes, label_list)]
    n_bands = {s.cube.sizes[BAND] for s in train}
    if len(n_bands) > 1:
        raise UsageError(f"training scenes have different band counts: {sorted(n_bands)}")
    codes_all = np.unique(np.concatenate([s.lab[s.lab > 0] for s in train]))
    if codes_all.size < 2:
        raise UsageError(f"the labels hold one class only (code {int(codes_all[0])}): a classifier needs at least two")
    names: dict[int, str] = {}
    for s in train:
        names.update(s.labels.names)
    cls = estimator_class(model)
    probe = cls(n_classes=2, **(options or {}))
    patch, half = int(probe.patch), int(probe.patch) // 2

    # held-out pixels: other scenes, or whole blocks of the training scenes
    split_info: dict[str, Any]
    if test:
        held_scenes = []
        for sc, lab in test:
            cube = _open_scene(sc)
            held_scenes.append(_Scene(cube, _labels_for(lab, cube, class_field, class_names)))
        train_masks = [s.lab > 0 for s in train]
        held_masks = [s.lab > 0 for s in held_scenes]
        split_info = {"kind": "held-out scenes", "train_scenes": len(train), "test_scenes": len(held_scenes)}
    elif val_fraction > 0:
        blk = int(block or default_block(train[0].lab.shape, half))
        parts = block_split([s.lab for s in train], fraction=val_fraction, block=blk, margin=half, seed=seed)
        train_masks = [p[0] for p in parts]
        held_masks = [p[1] for p in parts]
        held_scenes = train
        split_info = {"kind": "spatially disjoint blocks", "block_px": blk, "margin_px": half, "fraction": val_fraction}
    else:
        train_masks = [s.lab > 0 for s in train]
        held_scenes, held_masks = [], []
        split_info = {"kind": "none (all labelled pixels used for training)"}

    train_codes = np.unique(np.concatenate([s.lab[m] for s, m in zip(train, train_masks)]))
    if train_codes.size < 2:
        raise UsageError(f"after the spatial split the training pixels hold one class only (code {int(train_codes[0])}); "
                         "lower --val-fraction or the block size, or add labels")
    index = {int(c): i for i, c in enumerate(train_codes)}
    est = cls(n_classes=train_codes.size, **(options or {}))

    # early-stopping / model-selection pixels: blocks of the training pixels
    stop_masks = [np.zeros_like(m) for m in train_masks]
    try:
        fit_lab = [np.where(m, s.lab, 0) for s, m in zip(train, train_masks)]
        blk = int(block or default_block(train[0].lab.shape, half))
        parts = block_split(fit_lab, fraction=STOP_FRACTION, block=blk, margin=half, seed=seed + 1)
        cand_fit, cand_stop = [p[0] for p in parts], [p[1] for p in parts]
        fit_codes = np.unique(np.concatenate([s.lab[m] for s, m in zip(train, cand_fit)]))
        if fit_codes.size == train_codes.size:
            train_masks, stop_masks = cand_fit, cand_stop
    except UsageError:
        pass

    spectra = np.concatenate([s.spectra() for s in train])
    good = np.asarray(train[0].cube["bbl"].values, bool)
    prep = SpectralPrep.fit(spectra, good=good, wavelength=train[0].cube["wavelength"].values, pca=est.pca, seed=seed)
    for s in train[1:] + ([] if held_scenes is train else held_scenes):
        prep.check_scene(s.cube)  # same band set (count and wavelengths) as the first training scene
    feats = [prep.transform(s.values) for s in train]
    Xtr, ytr, _ = _gather(train, train_masks, feats, patch, index)
    Xst, yst, _ = _gather(train, stop_masks, feats, patch, index)
    weights = class_weights(ytr, train_codes.size)
    history = est.fit(Xtr, ytr, Xst if yst.size else None, yst if yst.size else None, class_weight=weights,
                      seed=seed, epochs=epochs, device=device)
    fitted = FittedClassifier(est, prep, train_codes, {int(c): names.get(int(c), f"class_{int(c)}") for c in train_codes})
    summary: dict[str, Any] = {
        "model": model, "options": est.state_config(), "seed": seed, "split": split_info,
        "train_pixels": int(ytr.size), "stop_pixels": int(yst.size),
        "train_pixels_per_class": {int(c): int((ytr == i).sum()) for c, i in index.items()},
        "bands_used": int(prep.bands.size), "features": prep.out_channels, "fit": history,
        "sensor": train[0].cube.attrs.get("sensor", ""),
    }
    if held_scenes:
        held_feats = feats if held_scenes is train else [prep.transform(s.values) for s in held_scenes]
        Xh, _, ch = _gather(held_scenes, held_masks, held_feats, patch, index)
        if ch.size:
            pred = fitted.codes[np.argmax(est.predict_proba(Xh, device=device), 1)]
            summary["heldout"] = score(pred, ch, {**names, **fitted.names})
    summary["fit_seconds"] = time.perf_counter() - t0
    fitted.summary = summary
    return fitted


def evaluate(fitted: FittedClassifier, scene: SceneLike, labels: LabelsLike, *, device: str = "cpu",
             class_field: str | None = None) -> dict[str, Any]:
    """Score a fitted classifier on every labelled pixel of a scene it was not trained on."""
    cube = _open_scene(scene)
    fitted.prep.check_scene(cube)
    sc = _Scene(cube, _labels_for(labels, cube, class_field, None))
    feat = fitted.prep.transform(sc.values)
    index = {int(c): i for i, c in enumerate(fitted.codes)}
    X_, _, codes = _gather([sc], [sc.lab > 0], [feat], fitted.patch, index)
    pred = fitted.codes[np.argmax(fitted.estimator.predict_proba(X_, device=device), 1)]
    return score(pred, codes, {**sc.labels.names, **fitted.names})


def predict_scene(
    fitted: FittedClassifier,
    scene: SceneLike,
    out: str | os.PathLike,
    *,
    probabilities: str | os.PathLike | None = None,
    device: str = "cpu",
    tile: int | None = None,
    batch_size: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Classify a whole scene, streamed through the engine, into a georeferenced class map.

    Writes ``out``: a COG with band 1 = class code (uint8, colour table, 0 = nodata/unclassified)
    and band 2 = confidence (max class probability, uint8 percent 1..100, scale 0.01), the class
    names in the ``class_names`` tag and a QGIS style ``out.qml`` beside it. With
    ``probabilities``, also a float32 COG with one probability band per class (NaN at nodata).

    Returns
    -------
    dict
        Output paths, pixels, seconds and pixels per second.
    """
    from hsikit.engine.job import output_meta, run_scene

    cube = _open_scene(scene)
    fitted.prep.check_scene(cube)
    codes = fitted.codes.astype(np.int64)
    k = codes.size
    half = fitted.patch // 2
    tile = int(tile or (256 if fitted.patch == 1 else 128))
    nd = cube.rio.nodata
    fill = float(nd) if nd is not None and np.isfinite(nd) else 0.0

    def proba(batch: np.ndarray) -> np.ndarray:
        phys = to_physical(batch, cube, band_axis=1)
        return fitted.predict_features(fitted.prep.transform(phys, band_axis=1), device=device)

    lut = codes.astype(np.uint8)

    def to_map(p: np.ndarray) -> np.ndarray:
        best = p.argmax(1)
        conf = np.clip(np.rint(100 * p.max(1)), 1, 100).astype(np.uint8)
        return np.stack([lut[best], conf], 1)

    names = fitted.class_names()
    tags = {CLASS_NAMES_TAG: json.dumps({str(int(c)): n for c, n in zip(codes, names)}), "classifier": fitted.kind}
    t0 = time.perf_counter()
    outputs: dict[str, str] = {"map": str(out)}
    map_meta = output_meta(cube, out_bands=2, names=["class", "confidence"], dtype=np.uint8, nodata=0,
                           keep_band_metadata=False, colormap=colormap([int(c) for c in codes]),
                           scale=np.array([1.0, 0.01]))
    map_meta.tags.update(tags)
    if probabilities is not None:
        pmeta = output_meta(cube, out_bands=k, names=names, dtype=np.float32, keep_band_metadata=False)
        pmeta.tags.update(tags)
        stats = run_scene(cube, proba, probabilities, pmeta, tile=tile, halo=half, batch_size=batch_size,
                          fill_value=fill, progress=progress, description="classify")
        from hsikit.io import open_cube

        pcube = open_cube(probabilities)
        run_scene(pcube, to_map, out, map_meta, tile=512, halo=0, batch_size=1, fill_value=0.0,
                  overview_resampling="nearest", progress=False)
        outputs["probabilities"] = str(probabilities)
    else:
        stats = run_scene(cube, lambda b: to_map(proba(b)), out, map_meta, tile=tile, halo=half,
                          batch_size=batch_size, fill_value=fill, overview_resampling="nearest", progress=progress,
                          description="classify")
    qml = write_qml(Path(out).with_suffix(".qml"), [int(c) for c in codes], names)
    outputs["qgis_style"] = str(qml)
    seconds = time.perf_counter() - t0
    pixels = cube.sizes[Y] * cube.sizes[X]
    return {"outputs": outputs, "pixels": pixels, "seconds": seconds, "pixels_per_second": pixels / seconds if seconds else None,
            "tiles": stats.tiles}


def report_path(out: str | os.PathLike) -> Path:
    """Where the JSON report of a map goes: ``<map stem>.report.json`` beside it."""
    p = Path(out)
    return p.with_name(p.stem + ".report.json")


def classify(
    scene: SceneLike,
    labels: LabelsLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    model: str = "rf",
    load_model: str | os.PathLike | None = None,
    save_model: str | os.PathLike | None = None,
    probabilities: str | os.PathLike | None = None,
    val_fraction: float = 0.3,
    block: int | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    class_field: str | None = None,
    class_names: dict[int, str] | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit (or load) a classifier, score it on held-out blocks and write the scene's class map.

    Parameters
    ----------
    scene
        The scene to classify (path or cube).
    labels
        Training labels on that scene (raster, vector file, array); with ``load_model`` they are
        optional and, if given, score the loaded model on every labelled pixel.
    out
        Class map (.tif); the JSON report goes beside it (:func:`report_path`). None: no map.
    model, val_fraction, block, epochs, device, seed, class_field, class_names, options
        See :func:`fit_classifier`.
    load_model, save_model
        Model file to use instead of fitting / to write after fitting.
    probabilities
        Optional per-class probability raster (.tif).

    Returns
    -------
    dict
        The report: model, split, held-out OA/AA/kappa/per-class F1, outputs, timings.
    """
    if out is not None:
        from hsikit.engine.job import check_cog_output

        check_cog_output(out, task="classify")
    if load_model is None and labels is None:
        raise UsageError("labels are needed to fit a classifier (or give a model file to load)")
    cube = _open_scene(scene)
    if load_model is not None:
        fitted = FittedClassifier.load(load_model)
        report: dict[str, Any] = {"model": fitted.kind, "model_file": str(load_model), "trained": fitted.summary}
        if labels is not None:
            report["scores"] = evaluate(fitted, cube, labels, device=device, class_field=class_field)
            report["scores_on"] = "every labelled pixel of this scene (the loaded model was fitted elsewhere)"
    else:
        fitted = fit_classifier(cube, labels, model=model, val_fraction=val_fraction, block=block, epochs=epochs,
                                device=device, seed=seed, class_field=class_field, class_names=class_names,
                                options=options)
        report = {"model": fitted.kind, **{k: v for k, v in fitted.summary.items() if k != "heldout"}}
        if "heldout" in fitted.summary:
            report["scores"] = fitted.summary["heldout"]
            report["scores_on"] = "held-out blocks (never used for fitting or early stopping)"
        if save_model is not None:
            fitted.save(save_model)
            report["model_file"] = str(save_model)
    if out is not None:
        report["prediction"] = predict_scene(fitted, cube, out, probabilities=probabilities, device=device, progress=progress)
        rp = report_path(out)
        rp.write_text(json.dumps(report, indent=2, default=_json_default))
        report["report_file"] = str(rp)
    return report


