"""transferguard: adversarial robustness of transfer-learned image classifiers.

Train models with every transfer method of the two papers this project reproduces, audit a
fine-tuned model against attacks crafted on its public source model, and regenerate the papers'
figures and tables. Images are float tensors in [0, 1]; every model owns its normalisation.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    """``transferguard.audit(...)``: imported lazily so ``import transferguard`` stays light."""
    if name == "audit":
        from .auditing import audit

        return audit
    raise AttributeError(f"module 'transferguard' has no attribute {name!r}")
