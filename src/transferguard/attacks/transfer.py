"""Batched crafting and prediction: craft once on a source model, evaluate on many models.

A transfer (black-box) attack crafts on the source only; the target models are queried only
afterwards, on the finished adversarial batch, by :func:`transfer_predictions`.

Precision: crafting (every input gradient) always runs in fp32, whatever precision a model was
trained in, so a crafted batch does not depend on the hardware's bf16 kernels. Only the
prediction forward may run under bf16 autocast (``precision="bf16"``), which is cheap to check
against fp32 (``tests/test_precision.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .._progress import progress_bar
from ..errors import ConfigError
from .engine import eval_mode

logger = logging.getLogger(__name__)


def model_device(model: nn.Module) -> torch.device | None:
    """Device of the model's first parameter or buffer (``None`` for a stateless module)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")


PREDICT_PRECISIONS = (None, "fp32", "bf16")


def _forward_precision(precision: str | None, device: torch.device | None
                       ) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``precision="bf16"``; nothing for fp32 / None."""
    if precision not in PREDICT_PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose fp32 or bf16")
    if precision == "bf16":
        return torch.autocast(device.type if device is not None else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256,
            precision: str | None = None) -> torch.Tensor:
    """Predicted labels (CPU ``LongTensor``), in eval mode under ``inference_mode``.

    Batches move to the model's device; the model's previous train/eval modes are restored.
    ``precision="bf16"`` runs the forward under bf16 autocast (faster on GPUs; labels can differ
    from fp32 on near-ties); None / "fp32" is the plain fp32 forward. Crafting stays fp32.
    """
    _check_batch_size(batch_size)
    device = model_device(model)
    preds = []
    with eval_mode(model), torch.inference_mode(), _forward_precision(precision, device):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            if device is not None:
                xb = xb.to(device)
            preds.append(model(xb).argmax(dim=1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def transfer_predictions(x_adv: torch.Tensor, models: Mapping[str, nn.Module],
                         batch_size: int = 256, precision: str | None = None
                         ) -> dict[str, torch.Tensor]:
    """Predictions of every named model on one already-crafted batch (``precision``: see
    :func:`predict`; the batch itself was crafted in fp32)."""
    return {name: predict(model, x_adv, batch_size=batch_size, precision=precision)
            for name, model in models.items()}


def craft_in_batches(attack_fn: Callable[..., Any], x: torch.Tensor,
                     y: torch.Tensor | None = None, batch_size: int = 128,
                     progress: bool = True, *, device: torch.device | str | None = None,
                     desc: str = "crafting") -> Any:
    """Run ``attack_fn(xb, yb)`` (or ``attack_fn(xb)`` when ``y`` is ``None``) batch by batch.

    Batches move to ``device`` when given and results come back to ``x``'s device, so a large
    test set can live on the CPU while crafting happens on a GPU. An ``attack_fn`` that returns a
    mapping of tensors (e.g. :func:`fgsm_sweep`'s ε → batch) gets the same mapping back, each
    value concatenated over the batches.
    """
    _check_batch_size(batch_size)
    if y is not None and len(y) != len(x):
        raise ConfigError(f"{len(x)} images but {len(y)} labels")
    out = []
    starts = range(0, len(x), batch_size)
    for start in progress_bar(starts, desc=desc, disable=not progress, leave=False):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        if device is not None:
            xb = xb.to(device)
            yb = None if yb is None else yb.to(device)
        adv = attack_fn(xb) if yb is None else attack_fn(xb, yb)
        if isinstance(adv, Mapping):
            out.append({k: v.detach().to(x.device) for k, v in adv.items()})
        else:
            out.append(adv.detach().to(x.device))
    logger.debug("crafted %d images in %d batches", len(x), len(out))
    if out and isinstance(out[0], Mapping):
        return {k: torch.cat([batch[k] for batch in out]) for k in out[0]}
    return torch.cat(out) if out else x.detach().clone()
