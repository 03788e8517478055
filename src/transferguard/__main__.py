"""``python -m transferguard …``: the same command line as the ``transferguard`` script."""

import sys

from .cli import main

if __name__ == "__main__":  # guarded: the local backend's spawned workers re-import __main__
    sys.exit(main())
