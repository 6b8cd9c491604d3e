"""Model registry: name -> builder, weights on disk, card.

Model files register themselves (``@register_model("hsdt-s", task="denoise")`` on a builder that
takes keyword config and returns an ``nn.Module``), as timm does; a task's ``api.py`` imports its model
modules and looks names up here. This module imports nothing from the task packages.

Released weights live in ``models/<name>/`` at the top of the repository (or ``$HSIKIT_MODELS``):
``model.safetensors`` (the state dict), ``config.json`` (the builder's keyword arguments plus any
extra entries such as normalisation statistics under ``"extra"``) and ``README.md`` (the card: data,
recipe, steps, test metrics and the command that reproduces the file). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsikit.errors import InputError, UsageError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its name, task, builder and default configuration."""

    name: str
    task: str
    builder: Callable[..., Any]
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, task: str, description: str = "", **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(**config) -> nn.Module`` under ``name`` for ``task``.

    ``defaults`` are the builder's keyword arguments for this name (e.g. the variant's widths).
    """

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, task, builder, description, dict(defaults))
        return builder

    return wrap


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally of one task, sorted."""
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def released_models(task: str | None = None) -> list[str]:
    """Registered names (optionally of one task) whose released weights are present in :func:`models_dir`."""
    return [n for n in list_models(task) if (weights_path(n) / WEIGHTS_FILE).is_file()]


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is a :class:`UsageError` listing the known ones."""
    entry = _REGISTRY.get(name)
    if entry is None or (task is not None and entry.task != task):
        known = ", ".join(list_models(task)) or "none"
        raise UsageError(f"unknown model {name!r}{f' for {task}' if task else ''} (known: {known})")
    return entry


def models_dir() -> Path:
    """Folder of released weights: ``$HSIKIT_MODELS`` or ``models/`` beside the package."""
    env = os.environ.get("HSIKIT_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "models"


def weights_path(name: str) -> Path:
    """Folder holding the released weights of ``name`` (it may not exist)."""
    return models_dir() / name


def load_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a weights folder."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise InputError("no config.json in the weights folder", Path(folder))
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"corrupt config.json ({exc})", path) from None


def create_model(name: str, *, pretrained: bool = True, task: str | None = None, weights: str | os.PathLike | None = None, **overrides: Any) -> Any:
    """Build a registered model, with its released weights when ``pretrained``.

    Parameters
    ----------
    name
        Registered name.
    pretrained
        Load ``models/<name>/model.safetensors`` (or ``weights``); the builder's config then comes from
        the weights folder's ``config.json`` so the architecture always matches the file.
    task
        If given, ``name`` must belong to this task.
    weights
        A weights folder to load instead of the released one.
    **overrides
        Builder keyword arguments replacing the defaults (only without weights).

    Returns
    -------
    The ``nn.Module`` in eval mode when pretrained, with ``.hsikit_config`` holding the config used.
    """
    entry = get_entry(name, task)
    config = dict(entry.defaults)
    folder = Path(weights) if weights is not None else weights_path(name)
    if pretrained:
        file = folder / WEIGHTS_FILE
        if not file.is_file():
            raise InputError(f"no released weights for model {name!r} ({WEIGHTS_FILE} missing; released weights "
                             f"live in the repository's models/ folder or $HSIKIT_MODELS)", folder)
        saved = load_config(folder)
        config.update(saved.get("config", {}))
        if overrides:
            raise UsageError(f"cannot override the configuration of pretrained model {name!r}: {sorted(overrides)}")
        from safetensors.torch import load_file

        model = entry.builder(**config)
        state = load_file(str(file))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InputError(f"weights do not match model {name!r} (missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})", file)
        model.eval()
        model.hsikit_extra = saved.get("extra", {})
    else:
        config.update(overrides)
        model = entry.builder(**config)
        model.hsikit_extra = {}
    model.hsikit_config = config
    return model


def save_model(model: Any, folder: str | os.PathLike, *, name: str, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (atomically, file by file).

    ``config`` are the builder keyword arguments; ``extra`` any JSON-able metadata (normalisation
    statistics, band sets, class names, training summary).
    """
    from safetensors.torch import save_file

    from hsikit.io.atomic import atomic_output

    get_entry(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"name": name})
    with atomic_output(folder / CONFIG_FILE) as tmp:
        Path(tmp).write_text(json.dumps({"name": name, "config": config, "extra": extra or {}}, indent=2, sort_keys=True))
    return folder
