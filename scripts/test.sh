#!/usr/bin/env bash
# Run the test suite. Creates .venv and installs the project into it when missing,
# so this works on a fresh machine with nothing installed by hand.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
