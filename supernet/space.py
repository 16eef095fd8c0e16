"""Reading a model's search space: its decisions, their conditions, size, samples, validation.

The walk goes through the module tree in order. Every choice primitive declares its
decisions; containers of choices (a LayerChoice's candidates, a Repeat's optional
blocks) pass conditions down, so a decision inside an unchosen candidate or a block
beyond the chosen depth is known to be *inactive*: it may be left out of an
architecture and counts once in the space's size.
"""

from __future__ import annotations

import itertools
import json
import numbers
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from supernet.mutator import Placeholder
from supernet.primitives.base import Choice, Condition, Mutable
from supernet.primitives.value_choice import ValueChoiceX, as_declared, leaf_choices, same_sequence

__all__ = ["SearchSpace", "normalize_arch", "sample", "search_space"]


@dataclass
class _Occurrence:
    conditions: list[Condition]
    path: str


@dataclass(repr=False)
class SearchSpace(Mapping[str, Choice]):
    """The decisions of a model, in order of appearance, with their conditions and constraints.

    A read-only mapping ``label -> Choice`` (``keys()``, ``values()``, ``items()``, ``len``, ``in``);
    its ``repr`` is the table that ``print`` shows, so a notebook shows it too. Equality stays the
    dataclass's (same decisions, conditions and constraints), not a Mapping's (same items).
    """

    choices: dict[str, Choice] = field(default_factory=dict)
    occurrences: dict[str, list[_Occurrence]] = field(default_factory=dict)
    constrained: list[Mutable] = field(default_factory=list)

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.choices)

    def __iter__(self) -> Iterator[str]:
        return iter(self.choices)

    def __getitem__(self, label: str) -> Choice:
        return self.choices[label]

    def __contains__(self, label: object) -> bool:
        return label in self.choices

    def __repr__(self) -> str:
        return self.__str__()

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def default_arch(self) -> dict[str, Any]:
        """Every decision at its default (first) option: the network the space runs as is."""
        return {label: choice.default for label, choice in self.choices.items()}

    def is_active(self, label: str, arch: Mapping[str, Any]) -> bool:
        """Whether ``label`` matters under ``arch`` (its conditions hold somewhere it is used)."""
        return any(all(c.label in arch and c.holds(arch[c.label]) for c in occ.conditions)
                   for occ in self.occurrences[label])

    # -- size --------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The exact number of distinct architectures (inactive decisions counted once)."""
        grouped: set[str] = set()
        total = 1
        for module in self.constrained:
            count = module.count()
            labels = {c.label for c in module.decisions()}
            if count is not None and not labels <= grouped:  # modules sharing labels are one decision
                grouped.update(labels)
                total *= count
        labels = [label for label in self.choices if label not in grouped]
        conditioning = {c.label for label in labels for occ in self.occurrences[label] for c in occ.conditions}
        free = [label for label in labels if label not in conditioning and
                any(not occ.conditions for occ in self.occurrences[label])]
        for label in free:
            total *= len(self.choices[label].options)
        dependent = [label for label in labels if label not in free]
        for component in _components(dependent, self.occurrences):
            total *= self._count_component(component)
        return total

    def _count_component(self, labels: list[str]) -> int:
        conditioning = [label for label in labels
                        if any(c.label == label for other in labels for occ in self.occurrences[other]
                               for c in occ.conditions)]
        others = [label for label in labels if label not in conditioning]
        total = 0
        for values in itertools.product(*(self.choices[label].options for label in conditioning)):
            arch = dict(zip(conditioning, values))
            # an inactive conditioning decision counts once: only at its default
            if any(not self.is_active(label, arch) and not _same(arch[label], self.choices[label].default)
                   for label in conditioning):
                continue
            count = 1
            for label in others:
                if self.is_active(label, arch):
                    count *= len(self.choices[label].options)
            total += count
        return total

    # -- validation ----------------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``arch`` and return it complete (inactive decisions left out get their default).

        Raises ValueError naming the label for an unknown label, a missing active label or
        a value that is not allowed, and for a broken constraint (e.g. NAS-Bench-101 edges).
        """
        if not isinstance(arch, Mapping):
            raise TypeError(f"an architecture is a dict {{label: value}}, got {type(arch).__name__}")
        arch = normalize_arch(arch, self)
        unknown = [label for label in arch if label not in self.choices]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r} in the architecture; the space's labels are: "
                             f"{_abbreviate(list(self.choices))}")
        complete: dict[str, Any] = {}
        for label, choice in self.choices.items():
            if label in arch:
                if not choice.contains(arch[label]):
                    raise ValueError(f"invalid value {arch[label]!r} for {label!r}; allowed: "
                                     f"{_abbreviate(choice.options)}")
                complete[label] = choice.canonical(arch[label])
            elif self.is_active(label, {**complete, **arch}):
                raise ValueError(f"the architecture has no value for {label!r}; allowed: "
                                 f"{_abbreviate(choice.options)}")
            else:
                complete[label] = choice.default
        for module in self.constrained:
            module.check(complete)
        return complete

    # -- formats -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The search space in the external-tuner format of seed 004 (``_type`` / ``_value``)."""
        out: dict[str, Any] = {}
        for label, choice in self.choices.items():
            if choice.kind == "layer_choice":
                out[label] = {"_type": "layer_choice", "_value": list(choice.options)}
            elif choice.kind == "input_choice":
                out[label] = {"_type": "input_choice", "_value": {
                    "candidates": [str(i) for i in range(choice.n_candidates or 0)], "n_chosen": choice.n_chosen}}
            else:
                out[label] = {"_type": "choice", "_value": list(choice.options)}
        return out

    def dumps(self) -> str:
        """:meth:`to_json` as a JSON string."""
        return json.dumps(self.to_json(), indent=2, default=str)

    def __str__(self) -> str:
        rows = [("label", "kind", "options", "prior")]
        for label, choice in self.choices.items():
            options = _abbreviate(choice.options, 6)
            if choice.kind == "input_choice":
                options = f"{choice.n_chosen or 'any'} of {choice.n_candidates} inputs"
            rows.append((label, choice.kind, str(options), "" if choice.prior is None else
                         "[" + ", ".join(f"{p:.2g}" for p in choice.prior) + "]"))
        widths = [min(max(len(r[i]) for r in rows), 60) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{len(self.choices)} decisions, {self.size:,} architectures")
        return "\n".join(lines)


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _abbreviate(items: list[Any], limit: int = 20) -> str:
    if len(items) <= limit:
        return repr(list(items))
    return repr(list(items[:limit]))[:-1] + f", ... ({len(items)} in all)]"


def _components(labels: list[str], occurrences: Mapping[str, list[_Occurrence]]) -> list[list[str]]:
    """Group labels that are tied together by conditions (union-find), keeping label order."""
    parent = {label: label for label in labels}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for label in labels:
        for occ in occurrences[label]:
            for c in occ.conditions:
                if c.label in parent:
                    parent[find(c.label)] = find(label)
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(find(label), []).append(label)
    return list(groups.values())


# ---------------------------------------------------------------------------------------------
# walking a model
# ---------------------------------------------------------------------------------------------
def search_space(model: nn.Module) -> SearchSpace:
    """Every decision of ``model`` by label (in order), with the space's size and tuner format."""
    if isinstance(model, SearchSpace):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"search_space needs the model (a torch.nn.Module built from supernet.nn), "
                        f"got {type(model).__name__}")
    space = SearchSpace()
    for choice in model.__dict__.get("_supernet_model_parameters", []):
        _add(space, choice, [], "<constructor>")
    _walk(model, [], "", space)
    return space


def _add(space: SearchSpace, choice: Choice, conditions: list[Condition], path: str) -> None:
    known = space.choices.get(choice.label)
    if known is None:
        space.choices[choice.label] = choice
        space.occurrences[choice.label] = []
    elif not known.same_decision(choice):
        where = space.occurrences[choice.label][0].path or "<model>"
        raise ValueError(f"label {choice.label!r} names different decisions: {_abbreviate(known.options)} "
                         f"at {where} and {_abbreviate(choice.options)} at {path or '<model>'}; "
                         "the same label must have the same candidates")
    space.occurrences[choice.label].append(_Occurrence(list(conditions), path))


def _walk(module: nn.Module, conditions: list[Condition], path: str, space: SearchSpace) -> None:
    if isinstance(module, Placeholder):
        raise ValueError(f"Placeholder {module.label!r} at {path or '<model>'} was not replaced; "
                         "apply a Mutator before reading or freezing the space")
    if isinstance(module, Mutable):
        own = module.decision_conditions()
        for choice in module.decisions():
            extra = [own[choice.label]] if choice.label in own else []
            _add(space, choice, conditions + extra, path)
        if module.count() is not None or type(module).check is not Mutable.check:
            if not any(m is module for m in space.constrained):
                space.constrained.append(module)
        children = module.conditional_children()
    else:
        for name, value in vars(module).items():
            if isinstance(value, ValueChoiceX):
                for leaf in leaf_choices(value):
                    _add(space, Choice(leaf.label, "value_choice", list(leaf.candidates), leaf.prior),
                         conditions, f"{path}.{name}" if path else name)
        children = ((name, child, []) for name, child in module.named_children())
    for name, child, extra in children:
        if child is not None:
            _walk(child, conditions + extra, f"{path}.{name}" if path else name, space)


# ---------------------------------------------------------------------------------------------
# architecture formats and sampling
# ---------------------------------------------------------------------------------------------
def normalize_arch(arch: Mapping[str, Any], space: SearchSpace | None = None) -> dict[str, Any]:
    """Plain ``{label: value}`` from an arch dict or seed 004's parameters format.

    Accepts ``{"label": {"_value": ..., "_idx": ...}}`` entries, tuples for input lists,
    an int for a single chosen input and a candidate's index for list LayerChoices.
    """
    out: dict[str, Any] = {}
    for label, value in arch.items():
        choice = space.choices.get(label) if space is not None else None
        if isinstance(value, Mapping) and ("_value" in value or "_idx" in value):
            index = value.get("_idx", value.get("_idex"))
            if choice is not None and index is not None:
                _check_index(label, choice, index, value)
            if choice is not None and choice.kind == "input_choice":
                value = index if index is not None else [int(k) for k in value["_value"]]
            elif "_value" in value:
                value = value["_value"]
            elif choice is not None:
                value = choice.options[index]
            else:
                raise ValueError(f"{label!r}: a parameters entry without '_value' needs the space to read '_idx'")
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):  # numpy integers
            value = int(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, (bool, float, int)):  # numpy floats
            value = float(value)
        if choice is not None and choice.kind == "input_choice":
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if isinstance(value, (list, tuple)):
                value = sorted(int(v) for v in value)
        elif isinstance(value, (list, tuple)):  # a tuple option read from JSON as a list is that option
            value = next((o for o in (choice.options if choice else []) if same_sequence(value, o)), list(value))
        if choice is not None and choice.kind == "layer_choice" and isinstance(value, int) \
                and not isinstance(value, bool) and str(value) in choice.options and value not in choice.options:
            value = str(value)
        out[label] = value
    return out


def _check_index(label: str, choice: Choice, index: Any, entry: Mapping[str, Any]) -> None:
    """A parameters entry's ``_idx``: whole numbers in range that name its ``_value`` (when it has one)."""
    count = (choice.n_candidates or 0) if choice.kind == "input_choice" else len(choice.options)
    indices = index if isinstance(index, list) and choice.kind == "input_choice" else [index]
    for i in indices:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < count:
            raise ValueError(f"{label!r}: _idx {index!r} is out of range: the decision has {count} options "
                             f"(indices 0 to {count - 1})")
    if choice.kind != "input_choice" and "_value" in entry and \
            choice.options[index] != as_declared(entry["_value"], choice.options):
        raise ValueError(f"{label!r}: _idx {index} is {choice.options[index]!r}, but _value is {entry['_value']!r}")


def sample(model: nn.Module | SearchSpace, seed: int | None = None, max_tries: int = 10_000) -> dict[str, Any]:
    """A random architecture of ``model``: each decision drawn by its prior (uniform by default),
    redrawn until the space's constraints hold. Deterministic for a given ``seed``."""
    space = model if isinstance(model, SearchSpace) else search_space(model)
    rng = random.Random(seed)
    for _ in range(max_tries):
        arch = {label: _draw(choice, rng) for label, choice in space.choices.items()}
        try:
            for module in space.constrained:
                module.check(arch)
        except ValueError:
            continue
        return arch
    raise RuntimeError(f"no architecture meeting the space's constraints found in {max_tries} draws")


def _draw(choice: Choice, rng: random.Random) -> Any:
    if choice.kind == "input_choice" and choice.prior is not None:
        n = choice.n_candidates or 0
        if choice.n_chosen is None:
            return [i for i in range(n) if rng.random() < choice.prior[i] * n / 2]
        pool, weights, chosen = list(range(n)), list(choice.prior), []
        for _ in range(choice.n_chosen):
            (pick,) = rng.choices(range(len(pool)), weights=weights if sum(weights) > 0 else None)
            chosen.append(pool.pop(pick))
            weights.pop(pick)
        return sorted(chosen)
    if choice.prior is not None:
        return rng.choices(choice.options, weights=choice.prior)[0]
    return choice.options[rng.randrange(len(choice.options))]


