"""Exceptions raised at the library's boundary; the CLI prints them as one line."""

from __future__ import annotations


class TransferGuardError(Exception):
    """Base class of every error a user can cause with bad input."""


class DataError(TransferGuardError):
    """A dataset is missing, empty, corrupt or in the wrong format."""


class CheckpointError(TransferGuardError):
    """A weights file is unsafe, unreadable or does not fit the architecture."""


class ConfigError(TransferGuardError):
    """An option, spec or name is invalid."""


class StalePlanError(ConfigError):
    """A run folder's results come from a plan that the code no longer makes (e.g. new budgets)."""


class StoreError(TransferGuardError):
    """The experiment store cannot be written (full disk, read-only folder, no permission)."""
