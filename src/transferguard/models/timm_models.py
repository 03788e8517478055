"""Any timm classifier with a linear head, wrapped into the TGModel layout (``timm:<name>``).

timm is optional. The wrapper first tries a *staged* layout: when the model's top-level children
(containers holding ``feature_info`` modules expanded one level) run in sequence, the stem is
everything up to the first feature level of reduction <= 2, each later ``feature_info`` level is
one stage, and the neck is the rest of ``forward_features`` followed by timm's
``forward_head(pre_logits=True)``. That split is accepted only if it reproduces
``forward_features`` and the logits exactly on a probe input. Otherwise (e.g. vision transformers,
whose forward is not a chain of children) the model gets ONE stage, ``forward_features``, so
forward, penultimate features and spatial dropout on the final map still work, but per-stage
feature distillation sees a single stage. ``pretrained`` accepts only a local file (timm weights
come from a hub, which is never contacted).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ._norms import IMAGENET
from ._pretrained import load_pretrained_file, tensor_key_map
from .base import Normalize, TGModel

log = logging.getLogger(__name__)


class _Call(nn.Module):
    """Calls a bound method of a module that is registered elsewhere (avoids double registration)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], owned: nn.Module | None = None
                 ) -> None:
        super().__init__()
        self._fn = fn
        if owned is not None:
            self.owned = owned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)


class _Neck(nn.Module):
    """Tail of ``forward_features`` (registered here) then timm's pooling ``forward_head``."""

    def __init__(self, tail: nn.Sequential, rest: nn.ModuleDict,
                 head_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.tail = tail
        self.rest = rest
        self._head_fn = head_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._head_fn(self.tail(x))


def _ordered_children(net: nn.Module, feature_modules: list[str]) -> list[tuple[str, nn.Module]]:
    items: list[tuple[str, nn.Module]] = []
    for name, child in net.named_children():
        nested = any(f.startswith(name + ".") for f in feature_modules)
        if nested and isinstance(child, nn.Sequential):
            items.extend((f"{name}.{sub}", m) for sub, m in child.named_children())
        else:
            items.append((name, child))
    return items


class TimmModel(TGModel):
    """A timm model in the TGModel layout (see the module docstring for the split and its limits)."""

    input_size = 224

    def __init__(self, name: str, num_classes: int = 1000, *,
                 pretrained: bool | str | os.PathLike | None = None, **kwargs: object) -> None:
        super().__init__()
        import timm

        if pretrained is True:
            raise ConfigError("timm weights download from a hub; pass pretrained=<local file>")
        self.arch = f"timm:{name}"
        self.timm_name = name
        self.timm_kwargs = dict(kwargs)
        try:
            net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ConfigError(f"timm cannot build {name!r}: {exc}") from None
        classifier = net.get_classifier()
        if not isinstance(classifier, nn.Linear):
            raise ConfigError(f"timm model {name!r} has no plain linear classifier "
                              f"({type(classifier).__name__}); it cannot be wrapped")
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        mean, std = cfg.get("mean", IMAGENET[0]), cfg.get("std", IMAGENET[1])
        size = cfg.get("input_size", (3, 224, 224))
        self.input_size = int(size[-1])
        self.normalize = Normalize(mean, std)
        cls_path = next(n for n, m in net.named_modules() if m is classifier)
        self.head = classifier
        net.reset_classifier(0)  # net now ends at the pre-logits features
        self.staged = self._try_staged(net, classifier)
        if not self.staged:
            self.stem = nn.Identity()
            self.stages = nn.ModuleList([_Call(net.forward_features, owned=net)])
            self.neck = _Call(lambda h: net.forward_head(h, pre_logits=True))
            self._finish(["features"])
        # timm key -> our key, by tensor identity; the detached classifier maps to head.*.
        holder = nn.Module()
        holder.net = net
        self.source_key_map = {k[len("net."):]: v for k, v in tensor_key_map(holder, self).items()}
        self.source_key_map[f"{cls_path}.weight"] = "head.weight"
        if classifier.bias is not None:
            self.source_key_map[f"{cls_path}.bias"] = "head.bias"
        if pretrained:
            load_pretrained_file(self, pretrained)

    def _try_staged(self, net: nn.Module, classifier: nn.Linear) -> bool:
        info = getattr(net, "feature_info", None)
        try:
            feats = [f["module"] for f in info] if info is not None else []
            reductions = [int(f["reduction"]) for f in info] if info is not None else []
        except (TypeError, KeyError):
            return False
        if len(feats) < 2:
            return False
        if any(True for _ in net.named_parameters(recurse=False)) or \
                any(True for _ in net.named_buffers(recurse=False)):
            return False  # tensors held by the model itself would fall out of the split
        items = _ordered_children(net, feats)
        names = [n for n, _ in items]
        if not all(f in names for f in feats):
            return False
        cut = [names.index(f) for f in feats]
        if cut != sorted(cut):
            return False
        first = 1 if reductions[0] <= 2 and len(feats) > 2 else 0
        stem_end = cut[0] + 1 if first else 0
        bounds = [stem_end] + [c + 1 for c in cut[first:]]
        stem = nn.Sequential(*[m for _, m in items[:stem_end]]) if stem_end else nn.Identity()
        stages = [nn.Sequential(*[m for _, m in items[a:b]]) for a, b in zip(bounds, bounds[1:], strict=False)]
        rest_items = items[bounds[-1]:]
        # The tail of forward_features: the longest prefix of the rest that reproduces it.
        was_training = net.training
        net.eval()
        probe = torch.rand(2, 3, self.input_size, self.input_size, generator=torch.Generator().manual_seed(0))
        try:
            with torch.no_grad():
                x = self.normalize(probe)
                target = net.forward_features(x)
                logits_ref = classifier(net.forward_head(target, pre_logits=True))
                h = stem(x)
                for s in stages:
                    h = s(h)
                tail_len = None
                t = h
                for k in range(len(rest_items) + 1):
                    if t.shape == target.shape and torch.allclose(t, target, atol=1e-5, rtol=1e-4):
                        tail_len = k
                        break
                    if k < len(rest_items):
                        t = rest_items[k][1](t)
                if tail_len is None:
                    return False
                tail = nn.Sequential(*[m for _, m in rest_items[:tail_len]])
                logits = classifier(net.forward_head(tail(h), pre_logits=True))
                if not torch.allclose(logits, logits_ref, atol=1e-5, rtol=1e-4):
                    return False
        except (RuntimeError, TypeError, ValueError):
            return False
        finally:
            net.train(was_training)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        rest = nn.ModuleDict({n.replace(".", "_"): m for n, m in rest_items[tail_len:]})
        self.neck = _Neck(tail, rest, lambda z: net.forward_head(z, pre_logits=True))
        self._finish([feats[first + i] for i in range(len(stages))])
        return True

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(self.timm_kwargs)
        return cfg
