"""Architectures on [0, 1] inputs with named stages and penultimate features, and checkpoint I/O.

Names resolve on first use (PEP 562): ``from transferguard.models.registry import arch_info`` —
what the command line needs to check an architecture name — imports no torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_WHERE = {
    "IMAGENET": "._norms", "SYMMETRIC": "._norms", "Normalize": ".base", "TGModel": ".base",
    "load_checkpoint": ".checkpoint", "load_weights_file": "._weights",
    "load_weights_into": "._weights", "read_sidecar": ".checkpoint",
    "safetensors_metadata": "._weights", "save_checkpoint": ".checkpoint", "DTN": ".dtn",
    "EfficientNetLite": ".efficientnet_lite", "lite_weights_available": ".efficientnet_lite",
    "lite_weights_path": ".efficientnet_lite", "LoadedModel": ".loading",
    "load_model": ".loading", "split_model_spec": "transferguard._modelspec",
    "ARCHS": ".registry", "arch_info": ".registry", "create_model": ".registry",
    "list_archs": ".registry", "TorchvisionModel": ".torchvision_models",
    "WideResNet": ".wideresnet",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
