"""What ``train.py`` runs, one function per mode: search, finetune, export, space.

Each takes the resolved Hydra config and the run folder, and writes its outputs there:
``arch.json``, ``checkpoints/last.ckpt``, CSV and TensorBoard logs, pictures. Bad input
raises ``UserError`` (a ValueError) with one line that names the bad value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import supernet

__all__ = ["UserError", "run"]


class UserError(ValueError):
    """Bad input from the command line: reported as one line, exit status 2."""


MODES = ("search", "finetune", "export", "space")


def run(cfg: DictConfig, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Run ``cfg.mode`` in ``out_dir``; returns a summary (also printed by train.py)."""
    if cfg.mode not in MODES:
        raise UserError(f"unknown mode={cfg.mode!r}; modes: {', '.join(MODES)}")
    out = Path(out_dir)
    if cfg.mode in ("search", "finetune", "export"):
        _check_fresh(out)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return {"search": search, "finetune": finetune, "export": export, "space": show_space}[cfg.mode](cfg, out)


def _check_fresh(out: Path) -> None:
    for name in ("arch.json", "checkpoints", "finetune"):
        if (out / name).exists():
            raise UserError(f"the run folder {str(out)!r} already holds a run ({name}); choose another "
                            "hydra.run.dir so nothing is overwritten")


# -- building blocks -------------------------------------------------------------------------------
def build_space(cfg: DictConfig) -> torch.nn.Module:
    return instantiate(cfg.space, _convert_="all")


def build_data(cfg: DictConfig, search: bool) -> pl.LightningDataModule:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("num_classes", "input_shape"):  # facts about the data, for the space and algorithm
        data.pop(key, None)
    return instantiate(data, search=search, _convert_="all")


def build_trainer(cfg: DictConfig, out: Path, stage: str, **overrides: Any) -> pl.Trainer:
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(out, name="logs", version=stage), TensorBoardLogger(out, name="tensorboard", version=stage)]
    # the latest epoch as last.ckpt, rewritten every epoch so that a killed run can resume (save_last alone
    # writes only when another checkpoint was written in the same step, or when training ends)
    callbacks = [ModelCheckpoint(dirpath=out / ("checkpoints" if stage == "search" else f"{stage}/checkpoints"),
                                 filename="last", save_top_k=1)]
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg.update(overrides)
    return instantiate(trainer_cfg, logger=loggers, callbacks=callbacks + trainer_cfg.pop("callbacks", []),
                       default_root_dir=str(out), _convert_="all")


def load_arch(cfg: DictConfig, space: torch.nn.Module) -> dict[str, Any]:
    """``cfg.arch`` as a validated architecture of ``space``: a path to a JSON file."""
    path = Path(str(cfg.arch))
    if not path.is_file():
        raise UserError(f"arch={str(path)!r}: no such file (give the arch.json written by a search, "
                        "or a published architecture's name with the space it belongs to)")
    try:
        arch = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"arch={str(path)!r} is not valid JSON: {error}") from None
    try:
        return supernet.search_space(space).validate(arch)
    except (ValueError, TypeError) as error:
        raise UserError(f"arch={str(path)!r} does not fit the space {type(space).__name__}: {error}") from None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


# -- modes ---------------------------------------------------------------------------------------------
def search(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Search: build the supernet, fit it, export ``arch.json`` (and fine-tune with finetune_after=true)."""
    from algorithms.history import SearchHistory

    space = build_space(cfg)
    data = build_data(cfg, search=True)
    algorithm = instantiate(cfg.algorithm, space=space, num_classes=cfg.data.num_classes, _convert_="all")
    history = SearchHistory()
    trainer = build_trainer(cfg, out, "search")
    trainer.callbacks.append(history)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(str(ckpt_path)).is_file():
        raise UserError(f"ckpt_path={str(ckpt_path)!r}: no such checkpoint file")
    trainer.fit(algorithm, datamodule=data, ckpt_path=ckpt_path)
    arch = algorithm.export()
    _write_json(out / "arch.json", arch)
    if getattr(algorithm, "topk", None):
        algorithm.save_topk(out / "topk.json")
    _pictures(out, arch, history, algorithm)
    summary = {"arch": str(out / "arch.json"), "checkpoint": str(out / "checkpoints" / "last.ckpt"),
               **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}}
    if cfg.get("finetune_after"):
        summary["finetune"] = _finetune_net(cfg, out, supernet.freeze(space, arch), space)
    return summary


def _pictures(out: Path, arch: dict[str, Any], history: Any, algorithm: Any) -> None:
    from algorithms import plots

    if history.arch_weights:
        names = {label: [str(v) for v in algorithm.arch.alpha_values(label)] if label in algorithm.arch.space
                 else [] for label in history.arch_weights[0]}
        plots.plot_arch_weights(history.arch_weights, names, out / "arch_weights.png")
    if "controller/reward" in history.scalars:
        plots.plot_curve({k.split("/")[1]: v for k, v in history.scalars.items() if k.startswith("controller/")},
                         out / "reward.png", "ENAS controller", "epoch")
    if getattr(algorithm, "history", None):
        plots.plot_curve({"best accuracy": [h["best_accuracy"] for h in algorithm.history],
                          "mean top-k accuracy": [h["mean_accuracy"] for h in algorithm.history]},
                         out / "fitness.png", "SPOS evolution", "generation")
    loose_end = any(getattr(m, "merge_op", None) == "loose_end" for m in algorithm.supernet.modules())
    if not plots.plot_cells(arch, out / "cell.png", loose_end=loose_end):
        plots.plot_choices(arch, out / "choices.png")


def finetune(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Train an exported architecture (a file, or a published name with ``arch=<name>``) and test it."""
    import hub

    space = build_space(cfg)
    name = str(cfg.arch) if cfg.get("arch") is not None else None
    if name is None:
        raise UserError("mode=finetune needs arch=<path to arch.json> or arch=<published architecture name>; "
                        f"published: {', '.join(hub.list_searched_models())}")
    if name in hub.list_searched_models() and not Path(name).exists():
        net = hub.load_searched_model(name)
        arch_source = name
    else:
        arch = load_arch(cfg, space)
        arch_source = str(name)
        if cfg.get("inherit_weights"):
            net = _inherited(cfg, space, arch)
        else:
            net = supernet.freeze(space, arch)
    return {"arch": arch_source, **_finetune_net(cfg, out, net, space)}


def _inherited(cfg: DictConfig, space: torch.nn.Module, arch: dict[str, Any]) -> torch.nn.Module:
    ckpt = cfg.get("ckpt")
    if ckpt is None or not Path(str(ckpt)).is_file():
        raise UserError(f"inherit_weights=true needs ckpt=<the search's last.ckpt>; got ckpt={ckpt!r}")
    algorithm = instantiate(cfg.algorithm, space=space, num_classes=cfg.data.num_classes, _convert_="all")
    state = torch.load(str(ckpt), map_location="cpu", weights_only=False)["state_dict"]
    algorithm.load_state_dict(state)
    return supernet.freeze(algorithm.supernet, arch, inherit_weights=True)


def _finetune_net(cfg: DictConfig, out: Path, net: torch.nn.Module, space: torch.nn.Module) -> dict[str, Any]:
    from algorithms.cost import count_macs
    from algorithms.finetune import FixedNetModule

    data = build_data(cfg, search=False)
    module = FixedNetModule(net, num_classes=cfg.data.num_classes, **cfg.finetune.module)
    trainer = build_trainer(cfg, out, "finetune", max_epochs=cfg.finetune.epochs)
    trainer.fit(module, datamodule=data)
    results = trainer.test(module, datamodule=data, verbose=False)
    example = torch.zeros(1, *cfg.data.input_shape)
    summary = {"test_accuracy": float(results[0]["test/acc"]) if results else None,
               "params": sum(p.numel() for p in net.parameters()),
               "flops": count_macs(net.cpu(), example)}
    _write_json(out / "finetune" / "results.json" if (out / "finetune").exists() else out / "finetune_results.json",
                summary)
    return summary


def export(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Rebuild the search's algorithm from ``ckpt`` and write its ``arch.json`` again (no training)."""
    ckpt = cfg.get("ckpt")
    if ckpt is None or not Path(str(ckpt)).is_file():
        raise UserError(f"mode=export needs ckpt=<a search checkpoint>; got ckpt={ckpt!r}")
    space = build_space(cfg)
    algorithm = instantiate(cfg.algorithm, space=space, num_classes=cfg.data.num_classes, _convert_="all")
    checkpoint = torch.load(str(ckpt), map_location="cpu", weights_only=False)
    try:
        algorithm.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise UserError(f"ckpt={str(ckpt)!r} was not written by this algorithm and space: "
                        f"{str(error).splitlines()[0]}") from None
    algorithm.on_load_checkpoint(checkpoint)
    arch = algorithm.export()
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "arch.json", arch)
    return {"arch": str(out / "arch.json")}


def show_space(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Print the space's decisions and size; write the tuner JSON (seed 004 format)."""
    space = build_space(cfg)
    ss = supernet.search_space(space)
    print(ss)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "search_space.json", ss.to_json())
    return {"decisions": len(ss), "architectures": ss.size, "search_space": str(out / "search_space.json")}
