"""Seed 004's interface for writing one-shot algorithms: a sampler bound to a supernet.

A sampler ("mutator" in seed 004) decides which candidates the supernet computes::

    mutator = RandomMutator(space)            # converts the space to a supernet, in place
    model = mutator.model
    for x, y in loader:
        mutator.reset()                       # sample_search(): new masks, applied to the model
        loss = criterion(model(x), y)         # the model computes what the masks say
    arch = mutator.export()                   # sample_final() as an architecture {label: value}

``sample_search()`` and ``sample_final()`` return one mask per label: a BoolTensor (True for
the chosen candidates) or a FloatTensor (a weight for every candidate). A label's candidates
are its options (a LayerChoice's names, a ValueChoice's values, a Repeat's depths), or, for an
InputChoice, its ``n_candidates`` inputs. Masks map onto the engine's architecture state
(``ArchState``):

* all masks Bool: an architecture. A single-choice label takes exactly one True, an InputChoice
  ``n_chosen`` of them (any number if ``n_chosen`` is None). The path-sampling supernet runs that
  path; a differentiable one mixes with exact one-hot weights (``ArchState.pin``).
* some masks float: a weighting, which needs the differentiable family (``family =
  "differentiable"``). The output is ``sum_i mask[i] * candidate_i``, with the mask's autograd
  graph kept, so a sampler's own parameters learn through it. The engine mixes this way
  LayerChoice, ValueChoice (entangled units), Repeat and InputChoice with ``n_chosen=1`` and
  reduction ``sum`` (a unit with several ValueChoices weights each combination by the product
  of their weights, renormalised over the valid combinations when some are invalid); other
  decisions take Bool masks only (a Cell or NAS-Bench-101 cell mixes its own per-edge weights,
  other InputChoices softmax x n_chosen or sigmoid gates), and a weighting must give every
  decision a mask, since every candidate runs.

Seed 004 names the base class ``Mutator``; here it is :class:`Sampler`, because
``supernet.Mutator`` is seed 003's mutator (code that mutates a base model). Code from the
seed ports with ``from supernet.oneshot import Sampler as Mutator``; ``self.mutables`` yields
the decisions (``Choice``: ``.label`` is the seed's ``mutable.key``, ``.kind`` tells a
LayerChoice from an InputChoice, ``self.mask_length(choice)`` is ``mutable.length`` /
``n_candidates``). ``export()`` returns the architecture dict of the design (JSON-ready, for
``supernet.freeze``) rather than the seed's dict of tensors; ``self.masks`` holds the tensors.

Hooks: override ``on_forward_layer_choice(op, *args, **kwargs)`` or ``on_forward_input_choice(op,
inputs)`` to change how LayerChoice / InputChoice modules run (``self.masks[op.label]`` is their
mask; ``super()`` runs the engine's mixed op). They are installed only where overridden. Cells
have none (their slots become per-edge ops), nor do ValueChoice and Repeat (no module of their
own runs the candidates). A LayerChoice has no ``reduction`` argument (seed 001): a weighting's
sum is its reduction, and a hook can reduce otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from supernet.oneshot.choices import DifferentiableInputChoice, DifferentiableLayerChoice, DifferentiableRepeat
from supernet.oneshot.entangled import _MixedUnit
from supernet.oneshot.registry import convert
from supernet.oneshot.state import ArchState
from supernet.primitives.base import Choice
from supernet.primitives.input_choice import InputChoice
from supernet.primitives.layer_choice import LayerChoice

__all__ = ["RandomMutator", "Sampler"]

FAMILIES = ("path_sampling", "differentiable")
Masks = dict[str, torch.Tensor]


class Sampler(nn.Module):
    """Base class of architecture samplers (seed 004's ``Mutator``), bound to one supernet.

    ``model`` is a search space (converted here, in place, to ``family``: the class attribute
    unless given) or a supernet made by ``supernet.oneshot.convert``. ``self.model`` is the
    supernet, ``self.state`` its architecture state. A sampler is an ``nn.Module``: give it
    parameters (a controller) and optimise them like any model; the supernet is not its
    submodule, so ``self.parameters()`` are the sampler's own.
    """

    family = "path_sampling"

    def __init__(self, model: nn.Module, family: str | None = None) -> None:
        super().__init__()
        if (family or self.family) not in FAMILIES:
            raise ValueError(f"Sampler family {family or self.family!r} is unknown; allowed: 'path_sampling' "
                             "(Bool masks) or 'differentiable' (Bool and float masks)")
        state = _bound_state(model)
        if state is None:
            model, state = convert(model, family or self.family)
        elif family is not None and family != state.family:
            raise ValueError(f"family {family!r} was asked for, but the model is already a {state.family} "
                             "supernet; convert a fresh space, or leave family out")
        elif state.family not in FAMILIES:
            raise ValueError(f"the model is a {state.family} supernet; a Sampler drives 'path_sampling' or "
                             "'differentiable' supernets")
        self.__dict__["model"] = model  # not a submodule: the sampler's parameters are its own
        self.state: ArchState = state
        self.masks: Masks = {}
        self._float_refusals = _float_refusals(model, state)
        self._install_hooks()

    # -- what a subclass writes ----------------------------------------------------------------------
    def sample_search(self) -> Masks:
        """Masks for the next search step (applied to the model by :meth:`reset`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample_search() -> {{label: mask}}")

    def sample_final(self) -> Masks:
        """Bool masks of the final architecture (read by :meth:`export`; the model is not changed)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample_final() -> {{label: mask}}")

    def on_forward_layer_choice(self, op: LayerChoice, *args: Any, **kwargs: Any) -> Any:
        """How a LayerChoice runs under the current masks (default: the engine's mixed op)."""
        return type(op).forward(op, *args, **kwargs)

    def on_forward_input_choice(self, op: InputChoice, inputs: list[Any]) -> Any:
        """How an InputChoice reduces its inputs under the current masks (default: the engine's mixed op)."""
        return type(op).forward(op, inputs)

    # -- the seed's calls --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Sample masks with :meth:`sample_search` and apply them: the model computes them until the next reset."""
        self.apply_masks(self.sample_search())

    def export(self) -> dict[str, Any]:
        """The final architecture, ``{label: value}``, from :meth:`sample_final`'s Bool masks."""
        return self.masks_to_arch(self.sample_final())

    @property
    def mutables(self) -> list[Choice]:
        """The decisions of the model, one per label (seed 004's ``mutables``, de-duplicated by key)."""
        return list(self.state.space.choices.values())

    @property
    def arch(self) -> dict[str, Any] | None:
        """The architecture the model computes now; None while a differentiable model mixes candidates."""
        if self.state.family == "differentiable":
            return None if self.state.pinned is None else dict(self.state.pinned)
        return dict(self.state.arch)

    # -- masks and architectures ------------------------------------------------------------------------------
    def mask_length(self, choice: Choice | str) -> int:
        """How many entries a mask of ``choice`` has: its options, or an InputChoice's inputs."""
        choice = self.state.space.choices[choice] if isinstance(choice, str) else choice
        return (choice.n_candidates or 0) if choice.kind == "input_choice" else len(choice.options)

    def arch_to_masks(self, arch: Mapping[str, Any]) -> Masks:
        """Bool masks of an architecture (validated, completed)."""
        arch = self.state.space.validate(arch)
        masks = {}
        for label, value in arch.items():
            choice = self.state.space.choices[label]
            mask = torch.zeros(self.mask_length(choice), dtype=torch.bool)
            mask[list(value) if choice.kind == "input_choice" else choice.options.index(value)] = True
            masks[label] = mask
        return masks

    def masks_to_arch(self, masks: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The architecture of Bool masks (validated: every active decision, the space's constraints)."""
        self._check(masks)
        floats = [label for label, mask in masks.items() if mask.dtype != torch.bool]
        if floats:
            raise ValueError(f"{floats[0]!r} has a float mask, a weighting rather than one architecture: an "
                             "architecture (export, masks_to_arch) needs Bool masks, e.g. the argmax of the weights "
                             "as a one-hot BoolTensor")
        return self._arch_of(masks)

    def _arch_of(self, masks: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        arch = {}
        for label, mask in masks.items():
            choice = self.state.space.choices[label]
            chosen = [int(i) for i in mask.nonzero().flatten()]
            arch[label] = chosen if choice.kind == "input_choice" else choice.options[chosen[0]]
        return self.state.space.validate(arch)

    def apply_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Make the model compute ``masks`` (what :meth:`reset` does with :meth:`sample_search`'s masks)."""
        self._check(masks)
        state = self.state
        if all(mask.dtype == torch.bool for mask in masks.values()):
            arch = self._arch_of(masks)
            state.weight_override = {}
            if state.family == "differentiable":
                state.pin(arch)
            else:
                state.set_arch(arch)
        else:
            state.weight_override = self._weighting(masks)
            state.pin(None)
        self.masks = dict(masks)

    # -- checks --------------------------------------------------------------------------------------------------
    def _check(self, masks: Any) -> None:
        """One clear error for the first bad mask, naming its label and what is allowed."""
        choices = self.state.space.choices
        if not isinstance(masks, Mapping):
            raise TypeError(f"sample_search() / sample_final() must return a dict {{label: mask}}, got "
                            f"{type(masks).__name__}")
        for label, mask in masks.items():
            if label not in choices:
                raise ValueError(f"unknown label {label!r} in the masks; the space's labels are: {list(choices)}")
            choice, length = choices[label], self.mask_length(label)
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"the mask of {label!r} must be a BoolTensor or a FloatTensor, got "
                                f"{type(mask).__name__}")
            if mask.dtype != torch.bool and not mask.is_floating_point():
                raise ValueError(f"the mask of {label!r} has dtype {mask.dtype}; allowed: torch.bool (chosen "
                                 "candidates) or a float dtype (weights)")
            if mask.dim() != 1 or mask.numel() != length:
                what = "input" if choice.kind == "input_choice" else f"candidate of {choice.options}"
                raise ValueError(f"the mask of {label!r} has shape {tuple(mask.shape)} (length {mask.numel()}); "
                                 f"allowed: a 1-D mask of length {length} (one entry per {what})")
            if mask.dtype == torch.bool:
                _check_count(label, choice, int(mask.sum()))
            elif not bool(torch.isfinite(mask).all()):
                bad = "NaN" if bool(torch.isnan(mask).any()) else "inf"
                raise ValueError(f"the mask of {label!r} has {bad} weights; allowed: finite weights")
            elif self.state.family != "differentiable":
                raise ValueError(f"{label!r} got a float mask, which weights the candidates: that needs a "
                                 "differentiable supernet (family='differentiable'); a path_sampling one takes "
                                 "Bool masks")

    def _weighting(self, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every decision's mixing weights (Bool masks as one-hot weights), checked to be mixable."""
        weights = {}
        for label in self.state.space.choices:
            if label not in masks:
                raise ValueError(f"float masks weight every candidate, so every decision needs a mask: {label!r} "
                                 f"has none (a weighting must give every decision a mask)")
            refusal = self._float_refusals.get(label, "no differentiable op of the model mixes its candidates")
            if refusal:
                raise ValueError(f"{label!r} takes Bool masks only, and only when every mask is Bool: {refusal}")
            alpha = self.state.alpha_of(label)
            weights[label] = masks[label].to(device=alpha.device, dtype=alpha.dtype if masks[label].dtype ==
                                              torch.bool else masks[label].dtype)
        return weights

    def _install_hooks(self) -> None:
        for op in self.model.modules():
            if isinstance(op, LayerChoice) and type(self).on_forward_layer_choice is not \
                    Sampler.on_forward_layer_choice:
                op.forward = functools.partial(self.on_forward_layer_choice, op)
            elif isinstance(op, InputChoice) and type(self).on_forward_input_choice is not \
                    Sampler.on_forward_input_choice:
                op.forward = functools.partial(self.on_forward_input_choice, op)


class RandomMutator(Sampler):
    """Uniformly random paths (seed 004): every candidate, and every allowed subset of an
    InputChoice's inputs, is equally likely; redrawn until the space's constraints hold.

    Draws come from ``generator`` (seeded from torch's global RNG when None), so one seed
    reproduces the run. Priors declared in the space are not used (``supernet.sample`` draws
    by them). Construction already makes one random path active, which helps debugging.
    ``sample_final`` is ``sample_search``, as in the seed: export draws a fresh architecture.
    """

    def __init__(self, model: nn.Module, family: str | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(model, family)
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
        self.generator = generator
        self.reset()

    def sample_search(self) -> Masks:
        for _ in range(10_000):
            masks = {choice.label: self._draw(choice) for choice in self.mutables}
            try:
                self.masks_to_arch(masks)
            except ValueError:  # a broken constraint (e.g. NAS-Bench-101's edge budget): draw again
                continue
            return masks
        raise RuntimeError("no random architecture met the space's constraints in 10000 draws")

    def sample_final(self) -> Masks:
        return self.sample_search()

    def _draw(self, choice: Choice) -> torch.Tensor:
        length = self.mask_length(choice)
        if choice.kind == "input_choice" and choice.n_chosen is None:  # every subset: a fair coin per input
            return torch.randint(2, (length,), generator=self.generator).bool()
        count = choice.n_chosen if choice.kind == "input_choice" else 1
        mask = torch.zeros(length, dtype=torch.bool)
        mask[torch.randperm(length, generator=self.generator)[:count]] = True
        return mask


def _check_count(label: str, choice: Choice, count: int) -> None:
    if choice.kind != "input_choice":
        if count != 1:
            raise ValueError(f"the mask of {label!r} has {count} True; a {choice.kind} takes exactly one True "
                             f"among {choice.options}")
    elif choice.n_chosen is not None and count != choice.n_chosen:
        raise ValueError(f"the mask of {label!r} has {count} True; this InputChoice takes exactly "
                         f"{choice.n_chosen} of its {choice.n_candidates} inputs (n_chosen={choice.n_chosen})")


def _bound_state(model: nn.Module) -> ArchState | None:
    """The architecture state of a converted supernet (None for a space not converted yet)."""
    states = {id(s): s for m in model.modules() if isinstance(s := m.__dict__.get("_state"), ArchState)}
    if len(states) > 1:
        raise ValueError("the model holds mixed ops of several conversions; a sampler drives one supernet")
    return next(iter(states.values()), None)


def _float_refusals(model: nn.Module, state: ArchState) -> dict[str, str]:
    """label -> why a float mask cannot weight it ('' when the engine mixes it by a per-decision weighting)."""
    if state.family != "differentiable":
        return {}
    allowed: set[str] = set()
    refusals: dict[str, str] = {}
    for op in model.modules():
        if not getattr(op, "is_mixed", False):
            continue
        if isinstance(op, DifferentiableLayerChoice) or (isinstance(op, DifferentiableRepeat) and op.depth_choice
                                                         is not None):
            allowed.add(op.label)
        elif isinstance(op, _MixedUnit):
            allowed.update(leaf.label for leaf in op.leaves())
        elif isinstance(op, DifferentiableInputChoice) and op.n_chosen == 1 and op.reduction == "sum":
            allowed.add(op.label)
        elif isinstance(op, DifferentiableInputChoice):
            refusals[op.label] = (f"the engine mixes an InputChoice with n_chosen={op.n_chosen} and reduction "
                                  f"{op.reduction!r} by weights of its own (softmax x n_chosen, sigmoid gates, "
                                  "normalised for mean); float masks weight InputChoices with n_chosen=1 and "
                                  "reduction 'sum'")
        else:
            why = f"{type(op).__name__} mixes with weights of its own (per edge), not per decision"
            refusals.update({choice.label: why for choice in op.decisions()})
    return {label: refusals.get(label, "" if label in allowed else
                                "no differentiable op of the model mixes its candidates") for label in
            state.space.choices}
