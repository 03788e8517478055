"""How a user names a model (``PATH``, ``ARCH:WEIGHTS``, ``ARCH``), parsed without torch.

:func:`transferguard.models.load_model` builds on these; the command line uses them to report a
missing file in one line before it imports anything heavy.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError, ConfigError

#: File endings that mark a model spec as a path rather than an architecture name.
WEIGHT_SUFFIXES = (".safetensors", ".json", ".pt", ".pth", ".bin", ".ckpt")


def split_model_spec(spec: str) -> tuple[str, str | None]:
    """``'dtn:runs/a.safetensors'`` → ``('dtn', 'runs/a.safetensors')``; ``timm:`` names keep their prefix."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty model spec; use PATH, ARCH or ARCH:WEIGHTS, e.g. dtn:model.pt")
    prefix, rest = ("timm:", spec[len("timm:"):]) if spec.startswith("timm:") else ("", spec)
    arch, sep, weights = rest.partition(":")
    if not arch:
        raise ConfigError(f"model spec {spec!r} names no architecture")
    return prefix + arch, (weights if sep and weights else None)


def resolve_weights_file(path: Path) -> Path | None:
    """The weights file a user path names: itself, ``PATH.safetensors``, or the ``.json``'s pair."""
    if path.suffix == ".json":
        path = path.with_suffix("")
    for candidate in (path, path.with_name(path.name + ".safetensors")):
        if candidate.is_file() and candidate.suffix != ".json":
            return candidate
    return None


def parse_model_spec(spec: str, role: str) -> tuple[str | None, str | None, Path | None]:
    """``(arch, weights, file)`` of a model spec: ``arch`` None for a bare path, ``weights`` None
    for an architecture alone, ``file`` the weights file found on disk (None for ``ARCH``).

    A spec that names a file which does not exist raises :class:`CheckpointError`.
    """
    text = str(spec)
    found = resolve_weights_file(Path(text).expanduser())
    if found is not None:
        return None, text, found
    arch, weights = split_model_spec(text)
    if weights is None:
        if "/" in arch or Path(arch).suffix in WEIGHT_SUFFIXES:
            raise CheckpointError(f"--{role}: model file not found: {text}")
        return arch, None, None
    found = resolve_weights_file(Path(weights).expanduser())
    if found is None:
        raise CheckpointError(f"--{role}: weights file not found: {weights}")
    return arch, weights, found
