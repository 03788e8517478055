"""Architectures on [0, 1] inputs with named stages and penultimate features, and checkpoint I/O."""

from .base import IMAGENET, SYMMETRIC, Normalize, TGModel
from .checkpoint import (
    load_checkpoint,
    load_weights_file,
    load_weights_into,
    read_sidecar,
    safetensors_metadata,
    save_checkpoint,
)
from .dtn import DTN
from .efficientnet_lite import EfficientNetLite, lite_weights_available, lite_weights_path
from .loading import LoadedModel, load_model, split_model_spec
from .registry import ARCHS, arch_info, create_model, list_archs
from .torchvision_models import TorchvisionModel
from .wideresnet import WideResNet

__all__ = [
    "ARCHS",
    "DTN",
    "IMAGENET",
    "LoadedModel",
    "SYMMETRIC",
    "EfficientNetLite",
    "Normalize",
    "TGModel",
    "TorchvisionModel",
    "WideResNet",
    "arch_info",
    "create_model",
    "lite_weights_available",
    "lite_weights_path",
    "list_archs",
    "load_checkpoint",
    "load_model",
    "load_weights_file",
    "load_weights_into",
    "read_sidecar",
    "safetensors_metadata",
    "save_checkpoint",
    "split_model_spec",
]
