"""Entry point of the search / fine-tune CLI.

The Hydra CLI (``python train.py algorithm=darts space=nasnet``) is not built yet: it
arrives with the algorithms and CLI work. Until then this script says so and exits.
"""

from __future__ import annotations

import sys


def main() -> int:
    print("train.py: the search/fine-tune CLI is not implemented yet. The search-space language "
          "(supernet, supernet.nn) and the hub spaces are usable from Python; see README.md.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
