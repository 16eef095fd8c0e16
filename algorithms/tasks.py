"""What ``train.py`` runs, one function per mode: search, finetune, export, space.

Each takes the resolved Hydra config and the run folder, and writes its outputs there:
``arch.json``, ``checkpoints/last.ckpt``, CSV and TensorBoard logs, pictures. Bad input
raises ``UserError`` (a ValueError) with one line that names the bad value.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import supernet

__all__ = ["Interrupted", "UserError", "run"]


class UserError(ValueError):
    """Bad input from the command line: reported as one line, exit status 2."""


class Interrupted(Exception):
    """The search was stopped by Ctrl-C (SIGINT); ``checkpoint`` is the ``last.ckpt`` to resume from."""

    def __init__(self, message: str, checkpoint: str | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


MODES = ("search", "finetune", "export", "space")


def run(cfg: DictConfig, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Run ``cfg.mode`` in ``out_dir``; returns a summary (also printed by train.py)."""
    if cfg.mode not in MODES:
        raise UserError(f"unknown mode={cfg.mode!r}; modes: {', '.join(MODES)}")
    if cfg.get("ckpt") is not None:  # +ckpt=... (the old name) would otherwise be ignored
        raise UserError(f"ckpt= is now ckpt_path= (one name for the checkpoint to read): ckpt_path={cfg.ckpt}")
    out = Path(out_dir)
    if cfg.mode in ("search", "finetune", "export"):
        _check_fresh(out)
    _check_whole_number("seed", cfg.seed)
    tags = run_tags(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    summary = {"search": search, "finetune": finetune, "export": export, "space": show_space}[cfg.mode](cfg, out)
    return {**summary, "tags": tags}


def _check_whole_number(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"{name} must be a whole number, got {value!r}")


def _check_fresh(out: Path) -> None:
    for name in ("arch.json", "checkpoints", "finetune"):
        if (out / name).exists():
            raise UserError(f"the run folder {str(out)!r} already holds a run ({name}); choose another "
                            "hydra.run.dir so nothing is overwritten")


# -- building blocks -------------------------------------------------------------------------------
def build_space(cfg: DictConfig) -> torch.nn.Module:
    return instantiate(cfg.space, _convert_="all")


def build_data(cfg: DictConfig, search: bool) -> pl.LightningDataModule:
    from hydra.utils import get_class

    data = OmegaConf.to_container(cfg.data, resolve=True)
    accepts = inspect.signature(get_class(data["_target_"])).parameters
    for key in ("num_classes", "input_shape"):  # facts about the data, for the space and algorithm
        if key not in accepts:  # a data module that can check them (image folders: num_classes) gets them
            data.pop(key, None)
    return instantiate(data, search=search, _convert_="all")


def build_trainer(cfg: DictConfig, out: Path, stage: str, **overrides: Any) -> pl.Trainer:
    """The configured trainer with the loggers of ``logger/`` and the callbacks of ``callbacks/`` (and any
    listed in ``trainer.callbacks``), writing into ``out`` for ``stage`` (search or finetune), which set
    ``paths.*`` for the configs to use; ``overrides`` replace trainer settings. The run's ``tags`` are
    logged as a hyperparameter."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    paths = {"output_dir": str(out), "stage": stage, "stage_dir": str(out if stage == "search" else out / stage)}
    cfg = OmegaConf.merge(cfg, {"paths": paths})
    loggers = _instantiate_each(cfg, "logger")
    callbacks = _instantiate_each(cfg, "callbacks")
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg.update(overrides)
    for key in TRAINER_COUNTS:
        if trainer_cfg.get(key) is not None:
            name = f"trainer.{key}" if key not in overrides else "finetune.epochs" if key == "max_epochs" else key
            _check_whole_number(name, trainer_cfg[key])
    if not any(isinstance(c, ModelCheckpoint) for c in callbacks):  # no checkpoint the config did not ask for
        trainer_cfg.setdefault("enable_checkpointing", False)
    for logger in loggers:
        logger.log_hyperparams({"tags": run_tags(cfg)})
    return instantiate(trainer_cfg, logger=loggers or False, callbacks=callbacks + trainer_cfg.pop("callbacks", []),
                       default_root_dir=str(out), _convert_="all")


def _instantiate_each(cfg: DictConfig, group: str) -> list[Any]:
    """The objects of a config group of named entries (``logger.csv``, ``callbacks.model_checkpoint``); an
    entry set to null is left out. A missing optional package (wandb, mlflow, rich) is one ``UserError``."""
    from hydra.errors import InstantiationException

    built = []
    for name, node in (cfg.get(group) or {}).items():
        if node is None:
            continue
        try:
            built.append(instantiate(node, _convert_="all"))
        except InstantiationException as error:
            cause = error.__cause__
            line = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else str(error)
            if isinstance(cause, ImportError):
                raise UserError(f"{group}.{name} ({node.get('_target_')}) needs a package that is not installed: "
                                f"{line}") from None
            if isinstance(cause, (TypeError, ValueError)):
                raise UserError(f"{group}.{name}: {line}") from None
            raise
    return built


def run_tags(cfg: DictConfig) -> list[str]:
    """``cfg.tags`` as a list of words (one word given alone counts as a list of one)."""
    tags = cfg.get("tags")
    if tags is None:
        tags = []
    elif isinstance(tags, str):
        tags = [tags]
    elif OmegaConf.is_list(tags):
        tags = OmegaConf.to_container(tags, resolve=True)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise UserError(f"tags must be a list of words, got {tags!r}")
    return tags


TRAINER_COUNTS = ("max_epochs", "min_epochs", "max_steps", "log_every_n_steps", "num_sanity_val_steps",
                  "accumulate_grad_batches", "check_val_every_n_epoch")


def build_task(cfg: DictConfig) -> Any:
    """The configured task (``task=classification`` by default, ``task=regression``), checked against the
    data: a classification needs data with ``num_classes``, another task data without it."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    from algorithms.task import ClassificationTask

    num_classes = cfg.data.get("num_classes")
    if cfg.get("task") is None:
        return ClassificationTask(num_classes if num_classes is not None else 10)
    classification = "num_classes" in cfg.task  # task/classification.yaml: num_classes from the data
    regression = str(cfg.task.get("_target_", "")).endswith("RegressionTask")
    if (classification and num_classes is None) or (regression and num_classes is not None):
        name = "classification" if classification else "regression"
        kind = f"classification data (data.num_classes={num_classes})" if num_classes is not None else \
            "data without classes (no data.num_classes)"
        raise UserError(f"task {name} does not fit {kind}: give task=classification for classification data, "
                        "another task (e.g. task=regression) for data without classes")
    try:
        return instantiate(cfg.task, _convert_="all")
    except (InstantiationException, OmegaConfBaseException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        raise UserError(f"task: {str(cause).splitlines()[0]}") from None


def build_algorithm(cfg: DictConfig, space: torch.nn.Module) -> pl.LightningModule:
    """The configured algorithm on ``space`` and task; a hyperparameter it refuses is a ``UserError``."""
    from hydra.errors import InstantiationException

    task = build_task(cfg)
    classes = {"num_classes": task.num_classes} if hasattr(task, "num_classes") else {}
    try:
        return instantiate(cfg.algorithm, space=space, task=task, **classes, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, (ValueError, TypeError)):
            raise UserError(f"algorithm: {str(cause).splitlines()[0]}") from None
        raise


def load_checkpoint(path: Any) -> dict[str, Any]:
    """The Lightning checkpoint at ``ckpt_path``, read as plain data only (``algorithms.checkpoints.read``)."""
    from algorithms.checkpoints import CheckpointError, read

    try:
        return read(path, f"ckpt_path={str(path)!r}")
    except CheckpointError as error:
        raise UserError(str(error)) from None


# what a checkpoint fixes: the command line may repeat it, not change it (the weights are of that space, trained
# by that algorithm on that task); the data is the checkpoint's unless the command line names other data
FIXED_BY_CHECKPOINT = ("space", "algorithm", "task")


def with_checkpoint_config(cfg: DictConfig, checkpoint: Mapping[str, Any], builds_data: bool = True) -> DictConfig:
    """``cfg`` with the configuration ``checkpoint`` records (``checkpoint["config"]``, see
    ``algorithms.checkpoints``) in place of ``space``, ``algorithm``, ``task`` and ``data``.

    A value the command line gives for the space, the algorithm or the task must be the checkpoint's, else
    one ``UserError`` names both: ``space.width=16`` against a checkpoint of width 8, ``algorithm=enas``
    against a DARTS checkpoint (a group choice is compared by its class). Data given on the command line is
    used (a resume or a fine-tuning may read other data). Without Hydra's list of overrides (``run(cfg)``
    called from Python on a config composed without it) every value of ``cfg`` counts as given.
    The classes the checkpoint names are checked (``algorithms.checkpoints.check_targets``) where they will
    be built: the data module's only if ``builds_data`` (export reads the data's facts, builds no data).
    A checkpoint written before checkpoints recorded their configuration leaves ``cfg`` as it is."""
    from algorithms.checkpoints import CheckpointError, check_targets

    saved = checkpoint.get("config")
    if not isinstance(saved, Mapping):
        return cfg
    where = f"ckpt_path={str(cfg.ckpt_path)!r}"
    given = _given_keys(cfg)
    sections = {}
    for section in (*FIXED_BY_CHECKPOINT, "data"):
        theirs = saved.get(section)
        if not isinstance(theirs, Mapping):
            continue
        ours = OmegaConf.to_container(cfg[section], resolve=True) if cfg.get(section) is not None else {}
        keys = given.get(section, []) if given is not None else None  # None: all of them
        if section == "data" and (keys is None or keys):
            continue  # the command line's data
        if section != "data":
            _refuse_changes(section, ours, theirs, keys, where)
        try:
            check_targets(theirs, where, trusted=_targets(ours), classes=section != "data" or builds_data)
        except CheckpointError as error:
            raise UserError(str(error)) from None
        sections[section] = dict(theirs)
    merged = cfg.copy()
    with open_dict(merged):
        for section, value in sections.items():
            merged[section] = OmegaConf.create(value)
    return merged


def recorded_config(cfg: DictConfig) -> dict[str, Any]:
    """What a search checkpoint records of its run's configuration: space, algorithm, task and data, resolved
    to plain values."""
    return {section: OmegaConf.to_container(cfg[section], resolve=True)
            for section in (*FIXED_BY_CHECKPOINT, "data") if cfg.get(section) is not None}


def _given_keys(cfg: DictConfig) -> dict[str, list[str]] | None:
    """The keys the command line sets, by top-level section (``space.width=16`` -> ``{"space": ["width"]}``,
    a group choice ``space=darts`` -> ``{"space": [""]}``); None when the override list is not known."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "hydra" in cfg:  # composed with return_hydra_config=True
        overrides = list(cfg.hydra.overrides.task)
    elif HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:
        return None
    keys: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        section, _, key = override.key_or_group.partition(".")
        keys.setdefault(section, []).append(key)
    return keys


def _refuse_changes(section: str, ours: Mapping[str, Any], theirs: Mapping[str, Any], keys: list[str] | None,
                    where: str) -> None:
    mine, saved = _leaves(ours), _leaves(theirs)
    changed = [key for key in (sorted(set(mine) | set(saved)) if keys is None else [k or "_target_" for k in keys])
               if mine.get(key, "(unset)") != saved.get(key, "(unset)")
               and not (key.endswith("_target_") and _same_class(mine.get(key), saved.get(key)))]
    if "_target_" in changed:  # another class: its arguments are beside the point
        changed = ["_target_"]
    if changed:
        def values(config: Mapping[str, Any]) -> str:
            return ", ".join(f"{section}.{key}={config.get(key, '(unset)')!r}" for key in changed)

        raise UserError(f"{where} was written with {values(saved)}, but the command line gives {values(mine)}: "
                        "drop it (the checkpoint's configuration is used), or start a new search")


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for the nested dicts of a config (lists are values)."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        leaves.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, Mapping) else {f"{prefix}{key}": value})
    return {k.rstrip("."): v for k, v in leaves.items()}


def _same_class(a: Any, b: Any) -> bool:
    """Two class paths naming one class (``algorithms.DartsModule``, ``algorithms.darts.DartsModule``); only
    the library's own packages are imported to tell."""
    from algorithms.checkpoints import CheckpointError, resolve

    try:
        return resolve(a, "") is resolve(b, "")
    except CheckpointError:
        return False


def _targets(tree: Any) -> list[str]:
    """The class paths a (trusted) config names."""
    if isinstance(tree, Mapping):
        return [t for k, v in tree.items() for t in ([v] if k == "_target_" else _targets(v))]
    if isinstance(tree, list):
        return [t for v in tree for t in _targets(v)]
    return []


def _check_same_hyperparameters(algorithm: pl.LightningModule, checkpoint: dict[str, Any], where: str) -> None:
    """A resume continues the search the checkpoint holds: the algorithm's hyperparameters must be the
    checkpoint's (any change makes it another search, not the continuation of this one). What lives
    outside the algorithm may change, e.g. ``trainer.max_epochs`` to extend a search."""
    saved = checkpoint.get("hyper_parameters")
    if not isinstance(saved, Mapping):
        return
    now = dict(algorithm.hparams)
    differ = [key for key in sorted(set(saved) | set(now)) if saved.get(key, "(unset)") != now.get(key, "(unset)")]
    if differ:
        changes = ", ".join(f"{key} {saved.get(key, '(unset)')!r} -> {now.get(key, '(unset)')!r}" for key in differ)
        raise UserError(f"{where} was written with other algorithm settings: {changes}; resume with the "
                        "checkpoint's settings (only trainer and data settings, such as trainer.max_epochs, "
                        "may change), or start a new search")


def _load_state(algorithm: pl.LightningModule, checkpoint: dict[str, Any], where: str) -> None:
    try:
        algorithm.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise UserError(f"{where} was not written by this algorithm and space: "
                        f"{str(error).splitlines()[0]}") from None


def load_arch(cfg: DictConfig, space: torch.nn.Module) -> dict[str, Any]:
    """``cfg.arch`` as a validated architecture of ``space``: a path to a JSON file."""
    path = Path(str(cfg.arch))
    if not path.is_file():
        raise UserError(f"arch={str(path)!r}: no such file (give the arch.json written by a search, "
                        "or a published architecture's name with the space it belongs to)")
    try:
        arch = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"arch={str(path)!r} is not valid JSON: {error}") from None
    except UnicodeDecodeError:
        raise UserError(f"arch={str(path)!r} is not a UTF-8 text file (give the arch.json written by a search)") \
            from None
    except OSError as error:
        raise UserError(f"arch={str(path)!r} cannot be read: {error.strerror or error}") from None
    try:
        ss = supernet.search_space(space)
        _check_arch_values(arch, ss)
        return ss.validate(arch)
    except (ValueError, TypeError) as error:
        raise UserError(f"arch={str(path)!r} does not fit the space {type(space).__name__}: {error}") from None


def _check_arch_values(arch: Any, ss: Any) -> None:
    """Stricter than the space's own check, for a file: a float (``12.0``) for a decision between whole
    numbers is refused (the API takes it as the option it equals; a file saying 12.0 is likely wrong).
    The tuner format's ``_idx`` is checked by ``validate`` itself."""
    if not isinstance(arch, Mapping):
        return  # validate says what an architecture is
    for label, value in arch.items():
        choice = ss.choices.get(label)
        if choice is None:
            continue
        if isinstance(value, Mapping):
            value = value.get("_value")
        options = choice.options if choice.kind != "input_choice" else []
        whole = bool(options) and all(isinstance(o, int) and not isinstance(o, bool) for o in options)
        if whole and isinstance(value, float):
            raise ValueError(f"{label!r} takes whole numbers ({', '.join(map(str, choice.options))}), got {value!r}")


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


# -- modes ---------------------------------------------------------------------------------------------
def search(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Search: build the supernet, fit it, export ``arch.json`` (and fine-tune with finetune_after=true)."""
    from algorithms.base import DivergenceError
    from algorithms.history import SearchHistory

    epochs = cfg.trainer.get("max_epochs")
    if isinstance(epochs, int) and (epochs == 0 or epochs < -1):
        raise UserError(f"trainer.max_epochs={epochs}: a search needs at least one epoch (-1: until trainer.max_steps)")
    ckpt_path = cfg.get("ckpt_path")
    saved = None
    if ckpt_path is not None:  # a resume: plain data only, read before Lightning does; the file's configuration
        saved = load_checkpoint(ckpt_path)
        cfg = with_checkpoint_config(cfg, saved)
    space = build_space(cfg)
    data = build_data(cfg, search=True)
    algorithm = build_algorithm(cfg, space)
    algorithm.checkpoint_config.update(recorded_config(cfg))
    history = SearchHistory()
    trainer = build_trainer(cfg, out, "search")
    trainer.callbacks.append(history)
    checkpoint = out / "checkpoints" / "last.ckpt"
    interrupt = _SaveOnInterrupt(checkpoint)
    trainer.callbacks.append(interrupt)
    if saved is not None:  # refuse a checkpoint that is not this search's before Lightning reads it
        where = f"ckpt_path={str(ckpt_path)!r}"
        _load_state(algorithm, saved, where)
        _check_same_hyperparameters(algorithm, saved, where)
    try:
        trainer.fit(algorithm, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except DivergenceError as error:
        raise UserError(str(error)) from None
    except SystemExit:  # Lightning ends the process with exit(1) after Ctrl-C, once on_exception has run
        if not trainer.interrupted:
            raise
        raise Interrupted(interrupt.message, str(checkpoint) if checkpoint.is_file() else None) from None
    # saved again once training has ended: the final search (ENAS best of N, SPOS evolution) runs in
    # on_train_end, after the last epoch's checkpoint; and fast_dev_run writes no checkpoint at all
    trainer.save_checkpoint(checkpoint, weights_only=False)  # the whole state, to resume from
    arch = algorithm.export()
    _write_json(out / "arch.json", arch)
    if getattr(algorithm, "topk", None):
        algorithm.save_topk(out / "topk.json")
    from algorithms.compare import describe, random_baseline

    pictures = _pictures(out, arch, history, algorithm, trainer)
    summary = {"arch": str(out / "arch.json"), "found": describe(arch), "checkpoint": str(checkpoint),
               **({"topk": str(out / "topk.json")} if (out / "topk.json").is_file() else {}),
               "pictures": [str(p) for p in pictures if p.is_file()],
               **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}}
    if cfg.get("finetune_after") or cfg.get("compare_random"):
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as the random architecture's below
        summary["finetune"] = _finetune_net(cfg, out, supernet.freeze(space, arch), space)
    if cfg.get("compare_random"):  # the found architecture against a random one trained the same way
        summary["random"], summary["comparison"] = random_baseline(cfg, out, space, summary["finetune"])
    return summary


class _SaveOnInterrupt(pl.Callback):
    """On Ctrl-C, keep a checkpoint to resume from. Lightning 2.6 catches KeyboardInterrupt in
    ``_call_and_handle_interrupt``, calls every callback's ``on_exception``, then ``sys.exit(1)``.

    The last finished epoch's ``last.ckpt`` is kept when there is one: resuming from an epoch end is exact
    (the loaders' order is drawn from seed and epoch). Before the first epoch has finished, the state as
    it is now is saved instead, so that the work is not lost (that resume repeats the interrupted epoch's
    first batches and is not bit-identical to an uninterrupted run)."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.message = "the search stopped before any checkpoint was written; nothing to resume"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt):
            return
        epoch, step = trainer.current_epoch, trainer.global_step
        if not self.checkpoint.is_file():
            trainer.save_checkpoint(self.checkpoint, weights_only=False)
            self.message = (f"the search stopped in epoch {epoch} (step {step}), before any epoch finished; "
                            f"its state now is saved in {self.checkpoint}")
        else:
            self.message = (f"the search stopped in epoch {epoch} (step {step}); the checkpoint of the last "
                            f"finished epoch is {self.checkpoint}")


def _pictures(out: Path, arch: dict[str, Any], history: Any, algorithm: Any, trainer: pl.Trainer) -> list[Path]:
    """Write the run's pictures, also as images in TensorBoard when the trainer has a TensorBoard logger;
    returns the files written."""
    from algorithms import plots
    from algorithms.history import tensorboard_writer

    written = []
    if history.arch_weights:
        kind = "gate probabilities" if algorithm.family == "binary_gate" else "architecture weights"
        written.append(plots.plot_arch_weights(history.steps, history.arch_weights, history.names,
                                               out / "arch_weights.png", title=f"{kind} (softmax of alpha)"))
    if "controller/reward" in history.scalars:
        def series(name: str) -> tuple[list[float], list[float]]:
            rows = history.scalars.get(f"controller/{name}", [])
            return [r[0] for r in rows], [r[1] for r in rows]

        panels = {"reward and its moving-average baseline": {"reward": series("reward"),
                                                             "baseline": series("baseline")},
                  "entropy of the controller's sample (nats)": {"entropy": series("entropy")}}
        written.append(plots.plot_curves(panels, out / "reward.png", "ENAS controller", "training step (batch)"))
    if getattr(algorithm, "history", None):
        name, rows = algorithm.task.score_name, algorithm.history
        generations = [h["generation"] for h in rows]
        panel = {"best": (generations, [h[f"best_{name}"] for h in rows]),
                 f"mean of the top {algorithm.hparams.topk}": (generations, [h[f"mean_{name}"] for h in rows])}
        written.append(plots.plot_curves({f"{name} of the candidates scored so far": panel}, out / "fitness.png",
                                         "SPOS evolution", "generation (0: the random initial population)"))
    loose_end = any(getattr(m, "merge_op", None) == "loose_end" for m in algorithm.supernet.modules())
    cell = plots.plot_cells(arch, out / "cell.png", loose_end=loose_end)
    written.append(cell if cell is not None else plots.plot_choices(arch, out / "choices.png"))
    writer = tensorboard_writer(trainer)
    if writer is not None:
        plots.to_tensorboard(writer, written, trainer.global_step)
    return written


def finetune(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Train an exported architecture (a file, or a published name with ``arch=<name>``) and test it; with
    ``inherit_weights=true``, from the supernet weights of the search checkpoint ``ckpt_path``, whose space,
    algorithm and data configuration are used."""
    import hub

    checkpoint = None
    if cfg.get("ckpt_path") is not None:
        if not cfg.get("inherit_weights"):
            raise UserError("mode=finetune reads ckpt_path only with inherit_weights=true (to start from the "
                            "search's supernet weights): add inherit_weights=true, or drop ckpt_path")
        checkpoint = load_checkpoint(cfg.ckpt_path)
        cfg = with_checkpoint_config(cfg, checkpoint)
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
            net = _inherited(cfg, space, arch, checkpoint)
        else:
            net = supernet.freeze(space, arch)
    return {"arch": arch_source, **_finetune_net(cfg, out, net, space)}


def _inherited(cfg: DictConfig, space: torch.nn.Module, arch: dict[str, Any],
               checkpoint: dict[str, Any] | None) -> torch.nn.Module:
    if checkpoint is None:
        raise UserError("inherit_weights=true needs ckpt_path=<the search's last.ckpt>")
    algorithm = build_algorithm(cfg, space)
    _load_state(algorithm, checkpoint, f"ckpt_path={str(cfg.ckpt_path)!r}")
    return supernet.freeze(algorithm.supernet, arch, inherit_weights=True)


def _finetune_net(cfg: DictConfig, out: Path, net: torch.nn.Module, space: torch.nn.Module) -> dict[str, Any]:
    from algorithms.cost import count_macs
    from algorithms.finetune import FixedNetModule

    data = build_data(cfg, search=False)
    task = build_task(cfg)
    module = FixedNetModule(net, task=task, **cfg.finetune.module)
    trainer = build_trainer(cfg, out, "finetune", max_epochs=cfg.finetune.epochs)
    trainer.fit(module, datamodule=data)
    results = trainer.test(module, datamodule=data, verbose=False)
    example = torch.zeros(1, *cfg.data.input_shape)
    summary = {f"test_{task.score_name}": float(results[0][f"test/{task.metric_name}"]) if results else None,
               "params": sum(p.numel() for p in net.parameters()),
               "flops": count_macs(net.cpu(), example)}
    path = out / "finetune" / "results.json" if (out / "finetune").exists() else out / "finetune_results.json"
    _write_json(path, summary)
    return {**summary, "results": str(path)}


def export(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Rebuild the search's algorithm from ``ckpt_path`` (its space and algorithm as the checkpoint records
    them) and write its ``arch.json`` again (no training)."""
    if cfg.get("ckpt_path") is None:
        raise UserError("mode=export needs ckpt_path=<a search checkpoint>")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    cfg = with_checkpoint_config(cfg, checkpoint, builds_data=False)
    space = build_space(cfg)
    algorithm = build_algorithm(cfg, space)
    _load_state(algorithm, checkpoint, f"ckpt_path={str(cfg.ckpt_path)!r}")
    algorithm.on_load_checkpoint(checkpoint)
    arch = algorithm.export()
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "arch.json", arch)
    return {"arch": str(out / "arch.json")}


def show_space(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Print the space's decisions and size; write the tuner JSON (seed 004 format). With ``ckpt_path``, the
    space a search checkpoint records."""
    if cfg.get("ckpt_path") is not None:
        cfg = with_checkpoint_config(cfg, load_checkpoint(cfg.ckpt_path), builds_data=False)
    space = build_space(cfg)
    ss = supernet.search_space(space)
    print(ss)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "search_space.json", ss.to_json())
    return {"decisions": len(ss), "architectures": ss.size, "search_space": str(out / "search_space.json")}
