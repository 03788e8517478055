"""Audit a fine-tuned model against attacks crafted on its public source model.

``audit(source, target, data, ...)`` returns the results table and, with ``out=``, writes
``results.csv``, ``report.md`` and ``report.html``; ``transferguard audit`` is its CLI.

The names below are imported on first use, so ``transferguard --help`` (which registers the audit
sub-command) does not pay for torch and torchvision.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AUDIT_COLUMNS": "api", "DEFAULT_EPS": "api", "audit": "api",
    "AuditData": "loading", "LoadedModel": "loading", "load_audit_data": "loading",
    "load_model": "loading", "split_model_spec": "loading",
    "exposure": "report", "verdict_line": "report", "write_audit_report": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
