"""The benchmark groups and their registry: one module per group, ``GROUPS`` names them.

Each group module has a docstring (its first line is the group's line in ``run.py --help``) and
``run(s: Settings) -> list[Row]``, which times our code against its references with
``harness.interleaved`` and returns the table's rows. A module may set ``DEFAULT = False`` to stay
out of a plain run (``demo`` does; it runs with ``--demo`` or ``--only NAME``).

To add a group: write ``groups/NAME.py`` as above and add one ``"NAME": NAME`` line to
``GROUPS`` (with its import). ``GROUPS`` decides what ``--only`` accepts, the order in which
groups run and the order of ``latest.md``. Sizes a new group needs go into ``harness.Settings``
(and ``Settings.quick`` for ``--quick``).
"""

from __future__ import annotations

from types import ModuleType

from . import audit, demo, fgsm_sweep, gpu, pgd, startup, train

GROUPS: dict[str, ModuleType] = {
    "fgsm_sweep": fgsm_sweep,
    "pgd": pgd,
    "train": train,
    "startup": startup,
    "demo": demo,
    "audit": audit,
    "gpu": gpu,
}
