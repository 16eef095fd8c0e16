"""Search, fine-tune, export or inspect a search space from the command line (Hydra).

    python train.py algorithm=darts space=nasnet               # search (default mode)
    python train.py mode=finetune space=darts arch=darts-v2    # train a published or exported architecture
    python train.py mode=export ckpt=outputs/search/<run>/checkpoints/last.ckpt
    python train.py mode=space space=mobilenetv3               # print the space, dump the tuner JSON
    python train.py -m algorithm=darts,enas,proxyless,spos space=mobilenetv3

The work is in ``algorithms/tasks.py``; this file only wires Hydra to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

RUN_FILES = ("arch.json", "checkpoints", "finetune")


def _refuse_existing_run_dir(argv: list[str]) -> None:
    """Stop before Hydra writes into a run folder given on the command line that already holds a run."""
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            folder = Path(arg.split("=", 1)[1])
            taken = [name for name in RUN_FILES if (folder / name).exists()]
            if taken:
                print(f"error: the run folder {str(folder)!r} already holds a run ({taken[0]}); choose another "
                      "hydra.run.dir so nothing is overwritten", file=sys.stderr)
                sys.exit(2)


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.errors import InstantiationException

    from algorithms.tasks import UserError, run

    try:
        summary = run(cfg, HydraConfig.get().runtime.output_dir)
    except (UserError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)  # bad input: one line, no traceback
        sys.exit(2)
    except InstantiationException as error:
        cause = error.__cause__ or error
        print(f"error: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else cause!r}",
              file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    _refuse_existing_run_dir(sys.argv[1:])
    main()
