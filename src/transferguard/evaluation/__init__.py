"""Robustness metrics: accuracy under attack, attack success rate, transferability γ, distances."""

from .metrics import (
    accuracy,
    adversarial_accuracy,
    attack_metrics,
    attack_success_rate,
    feature_distance,
    feature_distillation_loss,
    histogram,
    input_gradient_norms,
    transferability_gamma,
    weight_distance,
)

__all__ = [
    "accuracy",
    "adversarial_accuracy",
    "attack_metrics",
    "attack_success_rate",
    "feature_distance",
    "feature_distillation_loss",
    "histogram",
    "input_gradient_norms",
    "transferability_gamma",
    "weight_distance",
]
