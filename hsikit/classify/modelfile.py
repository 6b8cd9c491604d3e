"""A fitted classifier (estimator + spectral preprocessing + classes) and its one-file format.

The file is a safetensors file: the estimator's arrays under ``est.*``, the spectral preprocessing
(band set, wavelengths, mean/std, PCA) under ``prep.*``, and a JSON header (format, estimator kind
and configuration, class codes and names, training summary) in the safetensors metadata. No
pickle: loading a model file never runs code from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsikit.classify.estimator import Estimator, estimator_class
from hsikit.classify.features import SpectralPrep, tile_patches
from hsikit.errors import InputError
from hsikit.jsonable import json_default as _json_default

FORMAT = "hsikit-classifier"
VERSION = 1
#: pixels per call of the estimator during scene prediction
PREDICT_CHUNK = 4096


@dataclass
class FittedClassifier:
    """Everything needed to classify a scene of the sensor the model was fitted on.

    Attributes
    ----------
    estimator
        The fitted estimator (class indices 0..K-1).
    prep
        Spectral preprocessing applied to physical values before the estimator.
    codes
        ``(K,)`` class code of each index (the label values, e.g. 1..6).
    names
        ``{code: name}``.
    summary
        Training summary (data, split, settings, history, held-out scores).
    """

    estimator: Estimator
    prep: SpectralPrep
    codes: np.ndarray
    names: dict[int, str]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.estimator.kind

    @property
    def patch(self) -> int:
        return int(self.estimator.patch)

    def class_names(self) -> list[str]:
        """Names in index order."""
        return [self.names.get(int(c), f"class_{int(c)}") for c in self.codes]

    def predict_features(self, features: np.ndarray, device: str = "cpu") -> np.ndarray:
        """``(B, C, H, W)`` features -> ``(B, K, H, W)`` float32 probabilities.

        Spectral models classify every pixel; patch models classify the pixels at least
        ``patch // 2`` from the edge (the rest stays 0: the engine's halo covers it).
        """
        b, c, h, w = features.shape
        k = self.codes.size
        out = np.zeros((b, k, h, w), np.float32)
        p = self.patch
        if p == 1:
            flat = np.moveaxis(features, 1, -1).reshape(-1, c)
            probs = np.concatenate([self.estimator.predict_proba(flat[s : s + PREDICT_CHUNK, :, None, None], device=device)
                                    for s in range(0, flat.shape[0], PREDICT_CHUNK)]) if flat.size else np.zeros((0, k))
            return np.moveaxis(probs.reshape(b, h, w, k), -1, 1).astype(np.float32)
        half = p // 2
        for i in range(b):
            view, hh, ww = tile_patches(torch.from_numpy(np.ascontiguousarray(features[i])), p)
            rows = max(1, PREDICT_CHUNK // max(ww, 1))
            for r0 in range(0, hh, rows):
                part = view[r0 : r0 + rows].reshape(-1, c, p, p).numpy()
                prob = self.estimator.predict_proba(part, device=device)
                n = prob.shape[0] // ww
                out[i, :, half + r0 : half + r0 + n, half : half + ww] = np.moveaxis(prob.reshape(n, ww, k), -1, 0)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one safetensors file (atomically)."""
        from safetensors.numpy import save_file

        from hsikit.io.atomic import atomic_output

        tensors = {f"est.{k}": np.ascontiguousarray(v) for k, v in self.estimator.arrays().items()}
        tensors.update({k: np.ascontiguousarray(v) for k, v in self.prep.tensors().items()})
        tensors["classes.codes"] = self.codes.astype(np.int64)
        header = {"format": FORMAT, "version": VERSION, "kind": self.kind, "config": self.estimator.state_config(),
                  "names": {str(k): v for k, v in self.names.items()}, "summary": self.summary}
        p = Path(path)
        with atomic_output(p) as tmp:
            save_file(tensors, str(tmp), metadata={"hsikit": json.dumps(header, default=_json_default)})
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> FittedClassifier:
        """Read a model file written by :meth:`save`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        p = Path(path)
        if not p.is_file():
            raise InputError("model file not found", p)
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="numpy") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"not a model file ({exc})", p) from None
        try:
            header = json.loads(meta["hsikit"])
        except (KeyError, ValueError):
            raise InputError("not an hsikit classifier file (no hsikit header)", p) from None
        if header.get("format") != FORMAT:
            raise InputError(f"not an hsikit classifier file (format {header.get('format')!r})", p)
        if int(header.get("version", 0)) > VERSION:
            raise InputError(f"model file version {header['version']} is newer than this hsikit supports ({VERSION})", p)
        config = dict(header["config"])
        est = estimator_class(header["kind"])(**config)
        est.load_arrays({k[4:]: v for k, v in tensors.items() if k.startswith("est.")})
        prep = SpectralPrep.from_tensors({k: v for k, v in tensors.items() if k.startswith("prep.")})
        names = {int(k): str(v) for k, v in header.get("names", {}).items()}
        return cls(est, prep, tensors["classes.codes"], names, header.get("summary", {}))


