"""Audit a fine-tuned model against attacks crafted on its public source model.

``audit(source, target, data, ...)`` returns the results table and, with ``out=``, writes
``results.csv``, ``report.md`` and ``report.html``; ``transferguard audit`` is its CLI.
"""

from .api import AUDIT_COLUMNS, DEFAULT_EPS, audit
from .loading import AuditData, LoadedModel, load_audit_data, load_model, split_model_spec
from .report import exposure, verdict_line, write_audit_report

__all__ = ["AUDIT_COLUMNS", "DEFAULT_EPS", "AuditData", "LoadedModel", "audit", "exposure",
           "load_audit_data", "load_model", "split_model_spec", "verdict_line",
           "write_audit_report"]
