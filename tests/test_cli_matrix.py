"""Every algorithm x card space through the CLI's tasks with ``debug=fdr`` (one batch each step)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from algorithms.tasks import run

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ["darts", "darts2", "gumbel", "gdas", "enas", "proxyless", "spos"]
# the space configs are CPU-sized already; these make the mixing supernets of two of them lighter still
SPACES = {
    "nasnet": ["space.width=4", "space.num_cells=3"],
    "mobilenetv3": ["+space.width_multipliers=[0.5,1.0]", "+space.expand_ratios=[3.0,6.0]"],
    "shufflenet": [],
    "autoformer": ["+space.search_embed_dim=[32,48]", "+space.search_num_heads=[1,2]", "+space.search_depth=[1,2]"],
}


@pytest.mark.slow
@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_and_card_space_runs_through_the_cli_with_debug_fdr(algorithm, space, tmp_path):
    overrides = [f"algorithm={algorithm}", f"space={space}", "debug=fdr", "trainer=cpu", "data.batch_size=4",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "finetune_after=true",
                 *SPACES[space]]
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    summary = run(cfg, tmp_path)
    assert (tmp_path / "arch.json").exists()
    assert summary["finetune"]["params"] > 0
