#!/usr/bin/env bash
# The main job: set up .venv when missing, then a real search (DARTS on the NASNet space, embedded
# data, CPU), export of the architecture and fine-tuning of it. Extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python train.py experiment=quickstart "$@"
