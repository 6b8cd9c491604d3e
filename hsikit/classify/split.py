"""Spatially disjoint train / held-out splits by blocks, and class weights.

Random pixel splits put overlapping patches in training and test, which inflates accuracy by tens
of points (see docs/classify.md). Here the scene is cut into square blocks; whole blocks go to the
held-out set, and training pixels whose patch would reach into a held-out block (closer than
``margin`` pixels) are dropped, so no held-out pixel is ever inside a training patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_dilation

from hsikit.errors import UsageError


def default_block(shape: tuple[int, int], margin: int = 0) -> int:
    """Block edge (pixels): an 8 x 8 grid of blocks on the scene, at least ``4 * margin`` and 4 px."""
    return int(max(4, 4 * margin, round(min(shape) / 8)))


def block_split(
    labels: np.ndarray | Sequence[np.ndarray],
    *,
    fraction: float = 0.3,
    block: int | None = None,
    margin: int = 0,
    seed: int = 0,
    tries: int = 256,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split labelled pixels of one or several label maps into training and held-out blocks.

    Parameters
    ----------
    labels
        One ``(y, x)`` int label map (0 = unlabelled) or a list of them (several scenes share one
        pool of blocks).
    fraction
        Target share of labelled pixels held out, in (0, 1).
    block
        Block edge in pixels (default :func:`default_block` of the first map).
    margin
        Training pixels within ``margin`` pixels (Chebyshev) of a held-out block are dropped: use
        the patch half-width of the model.
    seed
        Seed of the block draw.
    tries
        Random block orders tried; the one whose per-class held-out shares are closest to
        ``fraction`` (every class on both sides when possible) wins.

    Returns
    -------
    list of (train, held_out)
        Boolean ``(y, x)`` masks per map; both only contain labelled pixels and never overlap.
    """
    maps = [np.asarray(labels)] if isinstance(labels, np.ndarray) and np.asarray(labels).ndim == 2 else [np.asarray(a) for a in labels]
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"held-out fraction must be in (0, 1), got {fraction}")
    block = int(block or default_block(maps[0].shape, margin))
    if block < 1:
        raise UsageError(f"block size must be >= 1, got {block}")
    classes = np.unique(np.concatenate([m[m > 0] for m in maps]))
    # one row per (map, block) unit with labelled pixels: class counts
    units, counts = [], []
    for i, m in enumerate(maps):
        by, bx = -(-m.shape[0] // block), -(-m.shape[1] // block)
        ids = (np.arange(m.shape[0])[:, None] // block) * bx + np.arange(m.shape[1])[None, :] // block
        lab = m > 0
        if not lab.any():
            continue
        cls_idx = np.searchsorted(classes, m[lab])
        table = np.zeros((by * bx, classes.size), np.int64)
        np.add.at(table, (ids[lab], cls_idx), 1)
        keep = np.flatnonzero(table.sum(1))
        units += [(i, int(b)) for b in keep]
        counts.append(table[keep])
    if not units:
        raise UsageError("no labelled pixel to split")
    table = np.concatenate(counts)
    if len(units) < 2:
        raise UsageError(f"all labelled pixels fall in one {block}x{block} block: use a smaller block size")
    total = table.sum(0).astype(float)
    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(max(1, tries)):
        order = rng.permutation(len(units))
        cum = np.cumsum(table[order].sum(1))
        n_out = int(np.searchsorted(cum, fraction * total.sum()) + 1)
        n_out = min(max(n_out, 1), len(units) - 1)
        out = order[:n_out]
        held = table[out].sum(0)
        share = held / total
        # every class on both sides where it has >= 2 blocks, then per-class shares near the target
        missing = np.sum((held == 0) | (held == total))
        score = 10.0 * missing + np.abs(share - fraction).mean() + abs(held.sum() / total.sum() - fraction)
        if score < best_score:
            best, best_score = out, score
    assert best is not None
    chosen = {units[k] for k in best}
    result = []
    for i, m in enumerate(maps):
        bx = -(-m.shape[1] // block)
        ids = (np.arange(m.shape[0])[:, None] // block) * bx + np.arange(m.shape[1])[None, :] // block
        out_blocks = np.array(sorted(b for (j, b) in chosen if j == i), np.int64)
        in_out = np.isin(ids, out_blocks)
        lab = m > 0
        held = in_out & lab
        near = binary_dilation(in_out, structure=np.ones((3, 3), bool), iterations=margin) if margin > 0 else in_out
        result.append((lab & ~near, held))
    return result


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced class weights ``N / (K n_k)`` for class indices ``y`` in 0..K-1 (0 weight when absent)."""
    n = np.bincount(np.asarray(y, np.int64), minlength=n_classes).astype(np.float64)
    w = np.zeros(n_classes)
    present = n > 0
    w[present] = n.sum() / (present.sum() * n[present])
    return w
