"""Patch classifiers in PyTorch behind the estimator interface: build from the zoo, train with class
weighting and early stopping, predict in batches, state as arrays.

Training: AdamW, weighted cross-entropy (balanced class weights), random flips / 90-degree rotations of
centred patches, mini-batches drawn with a seeded generator. After every epoch the average accuracy
(AA) on the early-stopping pixels (spatially separate blocks) is measured; the weights of the best
epoch are kept and training stops after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import copy
import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from hsikit.classify.estimator import Estimator
from hsikit.devices import resolve_device as _device

BATCH = 128
PREDICT_BATCH = 2048


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, vertical flip and transpose per sample of ``(N, C, p, p)`` patches
    (the 8 symmetries of the square; the centre pixel stays in place for odd ``p``)."""
    n = x.shape[0]
    flips = torch.rand(n, 3, generator=gen) < 0.5
    out = x.clone()
    for dim, col in ((3, 0), (2, 1)):
        idx = flips[:, col].nonzero().flatten().to(x.device)
        if idx.numel():
            out[idx] = out[idx].flip(dim)
    idx = flips[:, 2].nonzero().flatten().to(x.device)
    if idx.numel():
        out[idx] = out[idx].transpose(2, 3)
    return out


def _balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == k] == k) for k in np.unique(y)]))


class TorchEstimator(Estimator):
    """Base of the neural patch classifiers; subclasses name their zoo model and its config."""

    zoo_name: ClassVar[str]
    #: whether flips / rotations are valid augmentations (False for off-centre patches)
    symmetric: bool = True

    def __init__(self, n_classes: int, *, lr: float = 1e-3, weight_decay: float = 1e-4, patience: int = 20,
                 max_epochs: int = 100, batch_size: int = BATCH, in_channels: int | None = None, **config: Any) -> None:
        super().__init__(n_classes, lr=lr, weight_decay=weight_decay, patience=patience, max_epochs=max_epochs,
                         batch_size=batch_size, in_channels=in_channels, **config)
        self.net: torch.nn.Module | None = None

    def model_config(self, in_channels: int) -> dict[str, Any]:
        """Keyword arguments of the zoo builder."""
        raise NotImplementedError

    def build(self, in_channels: int) -> torch.nn.Module:
        from hsikit.zoo import create_model

        self.config["in_channels"] = int(in_channels)
        self.net = create_model(self.zoo_name, pretrained=False, **self.model_config(int(in_channels)))
        return self.net

    def extra_loss(self) -> torch.Tensor | float:
        """Additional loss term (e.g. an L2 penalty of the original recipe); 0 by default."""
        return 0.0

    def fit(self, X, y, X_stop, y_stop, *, class_weight, seed, epochs=None, device="cpu") -> dict[str, Any]:
        dev = _device(device)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = self.build(X.shape[1]).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.config["lr"], weight_decay=self.config["weight_decay"])
        w = torch.as_tensor(class_weight, dtype=torch.float32, device=dev)
        Xt = torch.from_numpy(np.ascontiguousarray(X, np.float32))
        yt = torch.from_numpy(np.asarray(y, np.int64))
        max_epochs = int(epochs or self.config["max_epochs"])
        bs = int(self.config["batch_size"])
        best, best_key, best_epoch, history = None, (-1.0, 0.0), -1, []
        t0 = time.perf_counter()
        for epoch in range(max_epochs):
            net.train()
            order = torch.randperm(Xt.shape[0], generator=gen)
            total = 0.0
            for s in range(0, Xt.shape[0], bs):
                idx = order[s : s + bs]
                xb = Xt[idx]
                if self.symmetric and xb.shape[-1] > 1:
                    xb = augment(xb, gen)
                xb, yb = xb.to(dev), yt[idx].to(dev)
                loss = F.cross_entropy(net(xb), yb, weight=w) + self.extra_loss()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
            entry = {"epoch": epoch + 1, "train_loss": total / max(1, Xt.shape[0])}
            if X_stop is not None and len(y_stop):
                prob = self.predict_proba(X_stop, device=device)
                aa = _balanced_accuracy(prob.argmax(1), y_stop)
                nll = float(-np.mean(np.log(np.clip(prob[np.arange(len(y_stop)), y_stop], 1e-12, None))))
                entry.update(stop_aa=aa, stop_nll=nll)
                key = (aa, -nll)
                if key > best_key:
                    best_key, best_epoch = key, epoch
                    best = copy.deepcopy(net.state_dict())
                elif epoch - best_epoch >= self.config["patience"]:
                    history.append(entry)
                    break
            history.append(entry)
        if best is not None:
            net.load_state_dict(best)
        net.eval()
        return {"epochs_run": len(history), "best_epoch": best_epoch + 1 if best is not None else len(history),
                "best_stop_aa": best_key[0] if best is not None else None, "seconds": time.perf_counter() - t0,
                "parameters": int(sum(p.numel() for p in net.parameters())), "history": history}

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray, *, device: str = "cpu") -> np.ndarray:
        assert self.net is not None, "fit or load the estimator first"
        dev = _device(device)
        net = self.net.to(dev)
        was_training = net.training
        net.eval()
        out = []
        for s in range(0, X.shape[0], PREDICT_BATCH):
            xb = torch.from_numpy(np.ascontiguousarray(X[s : s + PREDICT_BATCH], np.float32)).to(dev)
            out.append(torch.softmax(net(xb).float(), 1).cpu().numpy())
        net.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        net = self.build(int(self.config["in_channels"]))
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        net.eval()
