"""Weight entanglement: basic units whose arguments are ValueChoices share one weight.

The mixed op holds the weight of the largest setting and computes with the slice the
chosen values need: leading channels, the centre of a kernel, the first heads' part of
an attention projection. ``sliced_state(values)`` is that slice as a state dict; the
forward pass and the weight-inheriting freeze both use it, so a frozen network computes
exactly what the supernet computed. Units without an entangled form (or with a choice on
an argument that changes no weight shape) fall back to ``ComboUnit``: one instance per
combination of values.

Families mix the same ops. Path sampling computes with the current values, and an input
whose width is not the one those values expect is an error (as in the frozen network).
Differentiable search computes the mixture over every valid combination ``c`` of the
unit's labels' values::

    y = sum_c p_c * pad(f_c(x[:, :in_c]))        p_c = prod_label w_label[c_label] (renormalised
                                                  over the valid combinations)

where ``f_c`` is the frozen unit of ``c`` and ``pad`` zero-pads every output to the largest
(outputs of narrower widths are zero beyond their width, as FBNetV2's channel masks). Its
input is the mixture upstream, as wide as the widest in-value; each combination reads its
leading channels. Units linear in their weight compute it as ONE call with the mixed weight
``sum_c p_c * pad(W_c)`` (Conv2d over channels, kernel size and depthwise groups; Linear), as
the reference toolkit's differentiable mixed ops do (nni/nas/oneshot/pytorch/supermodule/
operation.py, ``MixedConv2d`` with weighted slices); BatchNorm, which normalises each channel
on its own, is one call with its output masked; LayerNorm is one call per width and
MultiheadAttention one per combination (not linear in their weights). Binary gates run the
active values and, for the gate gradient, the other sampled values on the same input,
zero-padded or cut to the width they take (the one place an input is fitted).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from supernet.oneshot.state import ArchState
from supernet.primitives.base import Choice
from supernet.primitives.basic_unit import BasicUnit
from supernet.primitives.value_choice import ValueChoiceX, contains_choice, evaluate_nested, leaf_choices

__all__ = ["ComboUnit", "EntangledUnit", "ENTANGLED_UNITS", "family_class"]

# (position of the input tensor, its dimension holding the width, the width under the unit's argument values)
Width = tuple[int, int, int]


def _largest(value: Any) -> Any:
    if isinstance(value, ValueChoiceX):
        options = value.all_options()
        if all(isinstance(o, (list, tuple)) for o in options):  # per dimension (kernel sizes, shapes)
            return type(options[0])(max(sizes) for sizes in zip(*options))
        return max(options)
    if isinstance(value, (list, tuple)):
        return type(value)(_largest(v) for v in value)
    return value


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pad_to(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    if tuple(tensor.shape) == tuple(shape):
        return tensor
    pad: list[int] = []
    for have, want in zip(reversed(tensor.shape), reversed(shape)):
        pad += [0, want - have]
    return F.pad(tensor, pad)


def _fit(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """``x`` with ``size`` entries along ``dim``: its leading ones, zero-padded if it has fewer."""
    have = x.shape[dim]
    if have == size:
        return x
    if have > size:
        return x.narrow(dim, 0, size)
    shape = list(x.shape)
    shape[dim] = size - have
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def _sum_padded(terms: list[torch.Tensor]) -> torch.Tensor:
    """The sum of ``terms``, each zero-padded to the largest size in every dimension."""
    shape = [max(sizes) for sizes in zip(*(t.shape for t in terms))]
    total = _pad_to(terms[0], shape)
    for term in terms[1:]:
        total = total + _pad_to(term, shape)
    return total


def _prefix_masks(sizes: Sequence[int], length: int, like: torch.Tensor) -> torch.Tensor:
    """``[len(sizes), length]``: row ``i`` is 1 on the first ``sizes[i]`` entries, 0 after."""
    return (torch.arange(length, device=like.device)[None, :] <
            torch.tensor(list(sizes), device=like.device)[:, None]).to(like.dtype)


def _key(values: Mapping[str, Any]) -> str:
    return repr(sorted(values.items(), key=lambda item: item[0]))


class _MixedUnit(BasicUnit):
    """What entangled and combination units share: their decisions and the three families' forward."""

    is_mixed = True
    _state: ArchState

    def leaves(self) -> list[Any]:
        return leaf_choices(self.init_arguments)

    def decisions(self) -> list[Choice]:
        return BasicUnit.decisions(self)

    def values(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments under ``arch`` (remembered for the last architecture object seen)."""
        cached = self.__dict__.get("_values_cache")
        if cached is not None and cached[0] is arch:
            return cached[1]
        entry = self.__dict__.get("_entries_cache", {}).get(id(arch))  # the mixture's combinations
        if entry is not None and entry[0] is arch:
            return entry[1]
        values = evaluate_nested(self.init_arguments, arch)
        self.__dict__["_values_cache"] = (arch, values)
        return values

    def forward_with(self, arch: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        """The widths the unit's inputs must have under ``values`` (checked by ``inputs``)."""
        return []

    def invalid(self, values: Mapping[str, Any]) -> str | None:
        """Why no frozen unit has ``values`` (e.g. groups not dividing the channels), or None."""
        return None

    def inputs(self, values: Mapping[str, Any], args: tuple) -> tuple:
        """``args`` checked against the widths ``values`` expect: a mismatch raises (as the frozen unit
        would), except inside the engine's own fitting (``_fitting``), which cuts or zero-pads."""
        widths = self.input_widths(values)
        if not widths:
            return args
        args = list(args)
        fit = self.__dict__.get("_fit_inputs", False)
        for position, dim, width in widths:
            x = args[position]
            if not isinstance(x, torch.Tensor) or x.shape[dim] == width:
                continue
            if not fit:
                raise ValueError(self._width_message(position, dim, x, width, "in this architecture"))
            args[position] = _fit(x, dim, width)
        return tuple(args)

    def _width_message(self, position: int, dim: int, x: torch.Tensor, width: int, where: str) -> str:
        choices = ", ".join(f"{k}={v!r}" for k, v in self.init_arguments.items() if contains_choice(v))
        return (f"{self.base_class.__name__}({choices}): input {position} has width {x.shape[dim]} in dimension "
                f"{dim} (shape {tuple(x.shape)}) but the unit expects {width} {where}; a frozen network fails "
                "here too, so feed it the width its in-value says")

    def _run_fitted(self, arch: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """``forward_with`` whose inputs are cut or zero-padded to the widths ``arch`` expects (engine-internal:
        a mixture's narrower combinations, a binary gate's other values)."""
        self.__dict__["_fit_inputs"] = True
        try:
            return self.forward_with(arch, *args, **kwargs)
        finally:
            self.__dict__["_fit_inputs"] = False

    def add_alphas(self, state: ArchState) -> None:
        if state.family != "path_sampling":
            for leaf in self.leaves():
                state.add_alpha(leaf.label, len(state.space.choices[leaf.label].options))

    # -- differentiable: the mixture over value combinations --------------------------------------------
    def _combinations(self) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], torch.Tensor, int, bool]:
        """The distinct valid argument values ``(arch, values)``; for every combination of leaf values (in
        ``itertools.product`` order) the index of its entry (-1: invalid); the number of entries; whether
        any combination is invalid."""
        cached = self.__dict__.get("_combinations_cache")
        if cached is None:
            labels = [leaf.label for leaf in self.leaves()]
            entries: list[tuple[dict[str, Any], dict[str, Any]]] = []
            seen: dict[str, int] = {}
            index = []
            reasons = []
            for combination in itertools.product(*(self._state.space.choices[label].options for label in labels)):
                arch = dict(zip(labels, combination))
                values = evaluate_nested(self.init_arguments, arch)
                reason = self.invalid(values)
                if reason is not None:
                    index.append(-1)
                    reasons.append(reason)
                    continue
                key = _key(values)
                if key not in seen:
                    seen[key] = len(entries)
                    entries.append((arch, values))
                index.append(seen[key])
            if not entries:
                raise ValueError(f"{self.base_class.__name__}: no combination of {labels} is valid ({reasons[0]})")
            cached = (entries, torch.tensor(index), len(entries), bool(reasons))
            self.__dict__["_combinations_cache"] = cached
            self.__dict__["_entries_cache"] = {id(arch): (arch, values) for arch, values in entries}
        return cached

    def mixture(self) -> list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]]:
        """``(arch, values, p)`` for every distinct valid value of the unit's arguments: ``p`` sums the
        product of the labels' mixing weights over the combinations giving those values."""
        entries, index, count, any_invalid = self._combinations()
        weights = [self._state.weights(leaf.label) for leaf in self.leaves()]
        product = weights[0]
        for w in weights[1:]:
            product = (product[:, None] * w[None, :]).reshape(-1)
        if index.device != product.device:
            index = index.to(product.device)
            self.__dict__["_combinations_cache"] = (entries, index, count, any_invalid)
        if any_invalid:  # renormalise over the valid combinations
            valid = index >= 0
            product, index = product[valid], index[valid]
            product = product / product.sum()
        coefficients = product.new_zeros(count).index_add(0, index, product)
        return [(arch, values, coefficients[i]) for i, (arch, values) in enumerate(entries)]

    def forward_mixed(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
                      *args: Any, **kwargs: Any) -> Any:
        """The mixture, one call per entry (exact for any unit); units linear in their weight override this."""
        outputs = [self._run_fitted(arch, *args, **kwargs) for arch, _, _ in mixture]
        rest = None
        if isinstance(outputs[0], tuple):  # e.g. attention's (output, weights): mix the output only
            rest, outputs = outputs[0][1:], [o[0] for o in outputs]
        mixed = _sum_padded([p * o for (_, _, p), o in zip(mixture, outputs)])
        return (mixed, *rest) if rest is not None else mixed

    def _check_mixed_inputs(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
                            args: tuple) -> None:
        """A mixture's inputs come as wide as the widest value (narrower mixtures upstream are zero-padded)."""
        widest: dict[tuple[int, int], int] = {}
        for _, values, _ in mixture:
            for position, dim, width in self.input_widths(values):
                widest[position, dim] = max(width, widest.get((position, dim), 0))
        for (position, dim), width in widest.items():
            x = args[position]
            if isinstance(x, torch.Tensor) and x.shape[dim] != width:
                raise ValueError(self._width_message(position, dim, x, width, "in the differentiable mixture (the "
                                                     "widest of its values; narrower outputs are zero-padded to it)"))

    # -- the families' forward ----------------------------------------------------------------------------
    def _forward_path_sampling(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward_with(self._state.arch, *args, **kwargs)

    def _forward_differentiable(self, *args: Any, **kwargs: Any) -> Any:
        if self._state.pinned is not None:
            return self.forward_with(self._state.pinned, *args, **kwargs)
        mixture = self.mixture()
        self._check_mixed_inputs(mixture, args)
        return self.forward_mixed(mixture, *args, **kwargs)

    def _forward_binary_gate(self, *args: Any, **kwargs: Any) -> Any:
        """The active values' output, gated for each of the unit's labels (``ArchState.gates``).

        A deviation from the authors: their MixedEdge gates a whole candidate block (proxylessnas
        search/models/super_nets/super_proxyless.py, one MixedEdge over whole MBConv candidates), so a
        label's gradient is one two-path estimate on the block's output. Here each weight-entangled
        unit (every conv, BatchNorm, ... a label reaches) has its own gate, and the label's gradient is
        the sum of the per-unit two-path estimates, each with the other units at their active values.
        A LayerChoice over whole blocks (as hub.ProxylessNAS has) is the authors' estimator exactly.
        """
        state = self._state
        arch = dict(state.arch)
        output = self.forward_with(arch, *args, **kwargs)
        rest = None
        if isinstance(output, tuple):
            output, rest = output[0], output[1:]
        shape = output.shape

        def compute(label: str, value: Any) -> Any:  # another sampled value, on the same input (fitted)
            other = self._run_fitted({**arch, label: value}, *args, **kwargs)
            other = other[0] if isinstance(other, tuple) else other
            return _pad_to(other, [max(a, b) for a, b in zip(other.shape, shape)])[
                tuple(slice(0, n) for n in shape)]

        output = state.gates([leaf.label for leaf in self.leaves()], output, compute)
        return (output, *rest) if rest is not None else output

    def __reduce_ex__(self, protocol: Any) -> Any:
        # a family class is made at conversion (family_class), so pickle cannot find it by its name: an
        # instance pickles as the class it extends and the family, and the copy is made of the same class
        key = type(self).__dict__.get("_family_key")
        if key is None:
            return super().__reduce_ex__(protocol)
        return _new_family_instance, key, self.__getstate__()

    def export_arch(self) -> dict[str, Any]:
        if self._state.family == "path_sampling":
            return {}
        arch = {}
        for leaf in self.leaves():
            options = self._state.space.choices[leaf.label].options
            arch[leaf.label] = options[int(self._state.alpha_of(leaf.label).detach().argmax())]
        return arch


def _all_values(unit: BasicUnit, state: ArchState) -> list[dict[str, Any]]:
    """The unit's arguments under every combination of its labels' values."""
    leaves = leaf_choices(unit.init_arguments)
    options = [state.space.choices[leaf.label].options for leaf in leaves]
    return [evaluate_nested(unit.init_arguments, {leaf.label: value for leaf, value in zip(leaves, combination)})
            for combination in itertools.product(*options)]


class EntangledUnit(_MixedUnit):
    """Base of weight-entangled units; subclasses give ``sliced_state`` and ``forward_with``."""

    base_class: type[nn.Module]
    searchable: tuple[str, ...] = ()  # the arguments that may hold choices

    @classmethod
    def from_primitive(cls, unit: BasicUnit, state: ArchState) -> nn.Module:
        bad = [k for k, v in unit.init_arguments.items() if contains_choice(v) and k not in cls.searchable]
        if bad:
            return family_class(ComboUnit, state).from_primitive(unit, state)
        mixed = cls.__new__(cls)
        args, kwargs = unit.call_arguments(cls.weight_arguments(unit, state))
        cls.base_class.__init__(mixed, *args, **kwargs)
        mixed.after_init(unit, state)
        object.__setattr__(mixed, "init_arguments", unit.init_arguments)
        object.__setattr__(mixed, "_state", state)
        mixed.train(unit.training)
        mixed.add_alphas(state)
        return mixed

    @classmethod
    def weight_arguments(cls, unit: BasicUnit, state: ArchState) -> dict[str, Any]:
        """The arguments building the module that holds the shared weights: each at its largest value."""
        return {k: _largest(v) for k, v in unit.init_arguments.items()}

    def after_init(self, unit: BasicUnit, state: ArchState) -> None:
        """Adjust the attributes of the weight-holding module after ``base_class.__init__``."""

    def sliced_state(self, values: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        args, kwargs = self.evaluated_arguments(arch)
        fixed = self.base_class(*args, **kwargs)
        fixed.load_state_dict(self.sliced_state(self.values(arch)))
        fixed.train(self.training)
        return fixed


def _conv_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int] | None:
    """Symmetric padding per dimension as numbers ('same' with an odd total is asymmetric: None)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return None if any(t % 2 for t in totals) else (totals[0] // 2, totals[1] // 2)
    return _pair(padding)


class EntangledConv2d(EntangledUnit, nn.Conv2d):
    """Conv2d with choices of channels, kernel size (centre slice), stride, padding, dilation, groups.

    The weight is ``[largest out_channels, largest in_channels / groups, largest kernel]``: groups
    tied to ``in_channels`` (depthwise) keep one input channel per group. A combination whose
    groups do not divide its channels is no convolution: path sampling refuses it, the
    differentiable mixture leaves it out.
    """

    base_class = nn.Conv2d
    searchable = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")

    @classmethod
    def weight_arguments(cls, unit: BasicUnit, state: ArchState) -> dict[str, Any]:
        largest = super().weight_arguments(unit, state)
        per_group = [v["in_channels"] // v.get("groups", 1) for v in _all_values(unit, state)
                     if cls._invalid(v) is None]
        # an ungrouped conv of the widest per-group input holds every combination's weight
        return {**largest, "in_channels": max(per_group) if per_group else largest["in_channels"], "groups": 1}

    def after_init(self, unit: BasicUnit, state: ArchState) -> None:
        largest = super().weight_arguments(unit, state)
        self.in_channels, self.groups = largest["in_channels"], largest.get("groups", 1)

    @staticmethod
    def _invalid(v: Mapping[str, Any]) -> str | None:
        groups = v.get("groups", 1)
        if v["in_channels"] % groups or v["out_channels"] % groups:
            return (f"groups={groups} must divide in_channels={v['in_channels']} and "
                    f"out_channels={v['out_channels']}")
        return None

    def invalid(self, values: Mapping[str, Any]) -> str | None:
        return self._invalid(values)

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        return [(0, 1, values["in_channels"])]

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        groups = v.get("groups", 1)
        kh, kw = _pair(v["kernel_size"])
        big_h, big_w = self.weight.shape[2:]
        top, left = (big_h - kh) // 2, (big_w - kw) // 2
        weight = self.weight[: v["out_channels"], : v["in_channels"] // groups, top:top + kh, left:left + kw]
        state = {"weight": weight}
        if self.bias is not None:
            state["bias"] = self.bias[: v["out_channels"]]
        return state

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Any, padding: Any,
              dilation: Any, groups: int) -> torch.Tensor:
        if self.padding_mode != "zeros":  # reflect / replicate / circular: pad explicitly, as nn.Conv2d does
            if isinstance(padding, str):
                totals = [d * (k - 1) for k, d in zip(weight.shape[2:], _pair(dilation))] if padding == "same" \
                    else [0, 0]
                pad = [totals[1] // 2, totals[1] - totals[1] // 2, totals[0] // 2, totals[0] - totals[0] // 2]
            else:
                ph, pw = _pair(padding)
                pad = [pw, pw, ph, ph]
            x, padding = F.pad(x, pad, mode=self.padding_mode), 0
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        reason = self.invalid(v)
        if reason is not None:
            raise ValueError(f"Conv2d: {reason}, so the architecture {dict(arch)} has no such convolution")
        (x,) = self.inputs(v, (x,))
        s = self.sliced_state(v)
        return self._conv(x, s["weight"], s.get("bias"), v.get("stride", 1), v.get("padding", 0),
                          v.get("dilation", 1), v.get("groups", 1))

    def forward_mixed(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
                      x: torch.Tensor) -> torch.Tensor:
        """One convolution per structure (stride, dilation, padding origin, channels per group) with the
        mixed weight ``sum_c p_c * pad(W_c)``; usually one in all.

        A combination's kernel sits centred in the largest kernel, so with padding grown by the offset
        (``p + d * (K - k) / 2``, the same for every kernel when ``p`` follows the kernel size) the
        zero-padded kernel computes exactly what the small one computes. Channel choices mask leading
        rows and columns (FBNetV2); grouped combinations mix when their channels per group agree (their
        groups are the leading groups of the widest).
        """
        p = torch.stack([p for _, _, p in mixture])
        outputs = []
        for call in self._plan(mixture, self.weight):
            weight = self.weight[call["weight"]]
            table = weight.new_zeros(call["table"]).index_put(call["index"], p[call["members"]].to(weight.dtype),
                                                              accumulate=True)
            mask = torch.einsum("abc,chw,ao,bi->oihw", table, call["window"], call["out_masks"], call["in_masks"])
            bias = None if self.bias is None else \
                self.bias[: weight.shape[0]] * (table.sum((1, 2)) @ call["out_masks"])
            outputs.append(self._conv(x[:, : call["inputs"]], weight * mask, bias, call["stride"], call["padding"],
                                      call["dilation"], call["groups"]))
        return _sum_padded(outputs)

    def _plan(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
              like: torch.Tensor) -> list[dict[str, Any]]:
        """The calls of ``forward_mixed`` and their constant masks (made once per dtype and device)."""
        cache = self.__dict__.setdefault("_plan_cache", {})
        if (like.dtype, like.device) in cache:
            return cache[like.dtype, like.device]
        big = self.weight.shape[2:]
        structures: dict[Any, list[int]] = {}
        settings = {}
        for member, (_, v, _) in enumerate(mixture):
            kernel, dilation = _pair(v["kernel_size"]), _pair(v.get("dilation", 1))
            numeric = _conv_padding(v.get("padding", 0), kernel, dilation)
            frame, padding = [], []
            for d in range(2):
                top = (big[d] - kernel[d]) // 2
                if numeric is not None and (big[d] - kernel[d]) % 2 == 0:  # in the full frame, padding grown
                    frame.append((0, big[d]))
                    padding.append(numeric[d] + top * dilation[d])
                else:  # off-centre (odd size difference) or asymmetric 'same': a frame of its own kernel
                    frame.append((top, top + kernel[d]))
                    padding.append(numeric[d] if numeric is not None else v["padding"])
            groups = v.get("groups", 1)
            layout = None if groups == 1 else (v["in_channels"] // groups, v["out_channels"] // groups)
            key = (_pair(v.get("stride", 1)), dilation, tuple(frame), repr(padding), layout)
            structures.setdefault(key, []).append(member)
            settings[key] = (tuple(frame), padding[0] if isinstance(padding[0], str) else tuple(padding))
        calls = []
        for key, members in structures.items():
            stride, dilation, _, _, layout = key
            (frame_h, frame_w), padding = settings[key]
            values = [mixture[m][1] for m in members]
            if layout is None:  # dense: channel choices mask leading rows and columns
                rows, cols = max(v["out_channels"] for v in values), max(v["in_channels"] for v in values)
                groups, inputs, ins = 1, cols, [v["in_channels"] for v in values]
            else:  # grouped alike: the leading groups of the widest
                cols, per_out = layout
                groups = max(v["groups"] for v in values)
                rows, inputs, ins = groups * per_out, groups * cols, [cols] * len(values)
            outs, kernels = [v["out_channels"] for v in values], [_pair(v["kernel_size"]) for v in values]
            distinct = [sorted(set(o)) for o in (outs, ins, kernels)]
            window = like.new_zeros(len(distinct[2]), frame_h[1] - frame_h[0], frame_w[1] - frame_w[0])
            for i, (kh, kw) in enumerate(distinct[2]):
                top, left = (big[0] - kh) // 2 - frame_h[0], (big[1] - kw) // 2 - frame_w[0]
                window[i, top:top + kh, left:left + kw] = 1.0
            calls.append({
                "weight": (slice(0, rows), slice(0, cols), slice(*frame_h), slice(*frame_w)),
                "table": tuple(len(d) for d in distinct), "members": torch.tensor(members, device=like.device),
                "index": tuple(torch.tensor([d.index(x) for x in column], device=like.device)
                               for d, column in zip(distinct, (outs, ins, kernels))),
                "out_masks": _prefix_masks(distinct[0], rows, like), "in_masks": _prefix_masks(distinct[1], cols, like),
                "window": window, "inputs": inputs, "stride": stride, "padding": padding, "dilation": dilation,
                "groups": groups})
        cache[like.dtype, like.device] = calls
        return calls


class EntangledLinear(EntangledUnit, nn.Linear):
    """Linear with choices of in/out features (leading slices)."""

    base_class = nn.Linear
    searchable = ("in_features", "out_features")

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        return [(0, -1, values["in_features"])]

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        state = {"weight": self.weight[: v["out_features"], : v["in_features"]]}
        if self.bias is not None:
            state["bias"] = self.bias[: v["out_features"]]
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        (x,) = self.inputs(v, (x,))
        s = self.sliced_state(v)
        return F.linear(x, s["weight"], s.get("bias"))

    def forward_mixed(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
                      x: torch.Tensor) -> torch.Tensor:
        """One call with the mixed weight ``sum_c p_c * pad(W_c)`` (leading rows and columns masked)."""
        outs = sorted({v["out_features"] for _, v, _ in mixture})
        ins = sorted({v["in_features"] for _, v, _ in mixture})
        weight = self.weight[: outs[-1], : ins[-1]]
        index = [(outs.index(v["out_features"]), ins.index(v["in_features"])) for _, v, _ in mixture]
        table = weight.new_zeros(len(outs), len(ins)).index_put(
            tuple(torch.tensor(i) for i in zip(*index)), torch.stack([p for _, _, p in mixture]).to(weight.dtype),
            accumulate=True)
        out_masks = _prefix_masks(outs, outs[-1], weight)
        mask = torch.einsum("ab,ao,bi->oi", table, out_masks, _prefix_masks(ins, ins[-1], weight))
        bias = None if self.bias is None else self.bias[: outs[-1]] * (table.sum(1) @ out_masks)
        return F.linear(x, weight * mask, bias)


class _EntangledBatchNorm(EntangledUnit):
    searchable = ("num_features", "eps", "momentum")

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        return [(0, 1, values["num_features"])]

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        n = v["num_features"]
        state = {}
        if self.affine:
            state["weight"], state["bias"] = self.weight[:n], self.bias[:n]
        if self.track_running_stats:
            state["running_mean"], state["running_var"] = self.running_mean[:n], self.running_var[:n]
            state["num_batches_tracked"] = self.num_batches_tracked
        return state

    def _momentum(self, v: Mapping[str, Any]) -> float:
        """The momentum is the module's ``momentum`` attribute, as for a plain BatchNorm (so ``momentum =
        None``, a cumulative average, works here too: SPOS's recalibration), unless the architecture
        searches it and the attribute is not ``None``. Call after counting the batch."""
        momentum = self.momentum
        if momentum is not None and contains_choice(self.init_arguments.get("momentum")):
            momentum = v["momentum"]
        if momentum is None:
            return 1.0 / float(self.num_batches_tracked) if self.training and self.track_running_stats else 0.0
        return momentum

    def _normalise(self, x: torch.Tensor, n: int, v: Mapping[str, Any],
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """The leading ``n`` channels normalised, times ``mask`` per channel if given (folded into the
        affine weight and bias); the running statistics of the widest setting are updated in their
        leading slice only."""
        track = self.track_running_stats
        weight, bias = (self.weight[:n], self.bias[:n]) if self.affine else (None, None)
        if mask is not None:
            weight, bias = (weight * mask, bias * mask) if self.affine else (mask, None)
        return F.batch_norm(
            x[:, :n], self.running_mean[:n] if track else None, self.running_var[:n] if track else None,
            weight, bias, self.training or not track, self._momentum(v), v.get("eps", self.eps))

    def _count_batch(self) -> None:
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        (x,) = self.inputs(v, (x,))
        self._count_batch()
        return self._normalise(x, v["num_features"], v)

    def forward_mixed(self, mixture: list[tuple[dict[str, Any], dict[str, Any], torch.Tensor]],
                      x: torch.Tensor) -> torch.Tensor:
        """Exact in one call: BatchNorm normalises each channel on its own, so a narrower setting's output
        is the widest one's leading channels, and the mixture is the widest output times the mixed channel
        mask ``sum_c p_c * [channel < n_c]`` (folded into the affine weight and bias, so no extra pass over
        the activations). One running-statistics update per forward, as one BatchNorm
        (one call per distinct ``eps``/``momentum`` if those are searched)."""
        self._count_batch()
        groups: dict[tuple[Any, Any], list[tuple[dict[str, Any], torch.Tensor]]] = {}
        for _, v, p in mixture:
            groups.setdefault((v.get("eps"), v.get("momentum")), []).append((v, p))
        outputs = []
        for members in groups.values():
            sizes = [v["num_features"] for v, _ in members]
            like = self.weight if self.affine else x
            mask = torch.stack([p for _, p in members]).to(like.dtype) @ _prefix_masks(sizes, max(sizes), like)
            outputs.append(self._normalise(x, max(sizes), members[0][0], mask))
        return _sum_padded(outputs)


class EntangledBatchNorm1d(_EntangledBatchNorm, nn.BatchNorm1d):
    base_class = nn.BatchNorm1d


class EntangledBatchNorm2d(_EntangledBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d with a choice of channels (leading slice of weights and running statistics)."""

    base_class = nn.BatchNorm2d


class EntangledLayerNorm(EntangledUnit, nn.LayerNorm):
    """LayerNorm with a choice of its normalised shape (leading slice of each normalised dimension)."""

    base_class = nn.LayerNorm
    searchable = ("normalized_shape", "eps")

    @staticmethod
    def _shape(v: Mapping[str, Any]) -> tuple[int, ...]:
        shape = v["normalized_shape"]
        return tuple(int(s) for s in shape) if isinstance(shape, (list, tuple)) else (int(shape),)

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        shape = self._shape(values)
        return [(0, d - len(shape), size) for d, size in enumerate(shape)]

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        index = tuple(slice(0, n) for n in self._shape(v))
        state = {}
        if self.weight is not None:
            state["weight"] = self.weight[index]
        if self.bias is not None:
            state["bias"] = self.bias[index]
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        (x,) = self.inputs(v, (x,))
        s = self.sliced_state(v)
        return F.layer_norm(x, self._shape(v), s.get("weight"), s.get("bias"), v.get("eps", 1e-5))


class EntangledMultiheadAttention(EntangledUnit, nn.MultiheadAttention):
    """MultiheadAttention with choices of embedding size and number of heads.

    The q, k and v projections each keep their leading rows and columns; heads split the
    chosen embedding, so fewer heads keep the same weights grouped differently.
    """

    base_class = nn.MultiheadAttention
    searchable = ("embed_dim", "num_heads", "dropout")

    @classmethod
    def from_primitive(cls, unit: BasicUnit, state: ArchState) -> nn.Module:
        arguments = unit.init_arguments
        if arguments.get("kdim") is not None or arguments.get("vdim") is not None:
            return family_class(ComboUnit, state).from_primitive(unit, state)
        return super().from_primitive(unit, state)

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        return [(i, -1, values["embed_dim"]) for i in range(3)]

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        e, big = v["embed_dim"], self.embed_dim
        w = self.in_proj_weight
        state = {"in_proj_weight": torch.cat([w[i * big: i * big + e, :e] for i in range(3)]),
                 "out_proj.weight": self.out_proj.weight[:e, :e]}
        if self.in_proj_bias is not None:
            b = self.in_proj_bias
            state["in_proj_bias"] = torch.cat([b[i * big: i * big + e] for i in range(3)])
        if self.out_proj.bias is not None:
            state["out_proj.bias"] = self.out_proj.bias[:e]
        if self.bias_k is not None:
            state["bias_k"], state["bias_v"] = self.bias_k[..., :e], self.bias_v[..., :e]
        return state

    def forward_with(self, arch: Mapping[str, Any], query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, **kwargs: Any) -> Any:
        v = self.values(arch)
        e = v["embed_dim"]
        s = self.sliced_state(v)
        query, key, value = self.inputs(v, (query, key, value))
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            query, key, value, e, v["num_heads"], s["in_proj_weight"], s.get("in_proj_bias"), s.get("bias_k"),
            s.get("bias_v"), self.add_zero_attn, v.get("dropout", 0.0), s["out_proj.weight"], s.get("out_proj.bias"),
            training=self.training, key_padding_mask=kwargs.get("key_padding_mask"),
            need_weights=kwargs.get("need_weights", True), attn_mask=kwargs.get("attn_mask"),
            average_attn_weights=kwargs.get("average_attn_weights", True), is_causal=kwargs.get("is_causal", False))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def _attention_widths(v: Mapping[str, Any]) -> list[Width]:
    embed = v["embed_dim"]
    return [(0, -1, embed), (1, -1, v.get("kdim") or embed), (2, -1, v.get("vdim") or embed)]


# The input widths of torch units computed per combination: each combination gets the width it takes
_COMBINATION_WIDTHS: dict[type, Callable[[Mapping[str, Any]], list[Width]]] = {
    **{cls: (lambda v: [(0, 1, v["in_channels"])]) for cls in (
        nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{cls: (lambda v: [(0, 1, v["num_features"])]) for cls in (
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)},
    nn.GroupNorm: lambda v: [(0, 1, v["num_channels"])],
    nn.Linear: lambda v: [(0, -1, v["in_features"])],
    nn.MultiheadAttention: _attention_widths,
}


class ComboUnit(_MixedUnit, nn.Module):
    """Any basic unit: one instance per combination of its choices' values (no weight sharing).

    Torch's layers whose input width is an argument (``_COMBINATION_WIDTHS``: convolutions,
    norms, Linear, MultiheadAttention's ``embed_dim``/``kdim``/``vdim``) are fed the width each
    combination takes; any other unit (e.g. your own ``@basic_unit``) gets its input as it comes,
    so its choices must not change the input it takes.
    """

    @classmethod
    def from_primitive(cls, unit: BasicUnit, state: ArchState) -> nn.Module:
        mixed = cls.__new__(cls)
        nn.Module.__init__(mixed)
        object.__setattr__(mixed, "init_arguments", unit.init_arguments)
        object.__setattr__(mixed, "base_class", unit.base_class)
        object.__setattr__(mixed, "_state", state)
        options = [state.space.choices[leaf.label].options for leaf in mixed.leaves()]
        mixed.combinations = nn.ModuleList()
        for values in itertools.product(*options):
            arch = dict(zip((leaf.label for leaf in mixed.leaves()), values))
            args, kwargs = mixed.evaluated_arguments(arch)
            mixed.combinations.append(unit.base_class(*args, **kwargs))
        mixed.train(unit.training)
        mixed.add_alphas(state)
        return mixed

    def _index(self, arch: Mapping[str, Any]) -> int:
        index = 0
        for leaf in self.leaves():
            options = self._state.space.choices[leaf.label].options
            index = index * len(options) + options.index(arch[leaf.label])
        return index

    def input_widths(self, values: Mapping[str, Any]) -> list[Width]:
        for cls in self.base_class.__mro__:
            if cls in _COMBINATION_WIDTHS:
                return _COMBINATION_WIDTHS[cls](values)
        return []

    def forward_with(self, arch: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        values = self.values(arch)
        args = self.inputs(values, args)
        if not self.__dict__.get("_fit_inputs") or self.input_widths(values):
            return self.combinations[self._index(arch)](*args, **kwargs)
        try:  # a mixture or a binary gate runs a unit whose input width the engine does not know
            return self.combinations[self._index(arch)](*args, **kwargs)
        except RuntimeError as error:
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            raise RuntimeError(
                f"{self.base_class.__name__} at {dict(arch)} failed on inputs of shape {shapes}: in the differentiable "
                "and binary-gate families every value combination of a basic unit without an entangled form runs on "
                "the same input, so its choices must not change the input it takes; give it a mixed op "
                "(supernet.oneshot.register_mixed_op) or search it with path sampling") from error

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        return self.combinations[self._index(arch)]

    def extra_repr(self) -> str:
        return f"{self.base_class.__name__} x {len(self.combinations)} combinations"


def family_class(cls: type, state: ArchState) -> type:
    """``cls`` with the forward pass of the state's family (classes are made once and cached)."""
    return _family_class(cls, state.family)


def _family_class(cls: type, family: str) -> type:
    key = (cls, family)
    if key not in _FAMILY_CLASSES:
        forward = {"path_sampling": cls._forward_path_sampling, "differentiable": cls._forward_differentiable,
                   "binary_gate": cls._forward_binary_gate}[family]
        prefix = {"path_sampling": "PathSampling", "differentiable": "Differentiable", "binary_gate": "BinaryGate"}
        name = prefix[family] + cls.__name__
        _FAMILY_CLASSES[key] = type(cls)(name, (cls,), {
            "forward": forward, "is_mixed": True, "__module__": __name__, "_family_key": key,
            **({"base_class": cls.__dict__["base_class"]} if "base_class" in cls.__dict__ else {})})
    return _FAMILY_CLASSES[key]


_FAMILY_CLASSES: dict[tuple[type, str], type] = {}


def _new_family_instance(cls: type, family: str) -> Any:
    """An empty instance of ``cls``'s family class, for unpickling (the state is set afterwards)."""
    return object.__new__(_family_class(cls, family))


class _FamilyDispatch:
    """Registry entry: builds the family's version of an entangled unit class at conversion."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def from_primitive(self, unit: BasicUnit, state: ArchState) -> nn.Module:
        return family_class(self.cls, state).from_primitive(unit, state)


ENTANGLED_UNITS: dict[type, Any] = {
    nn.Conv2d: _FamilyDispatch(EntangledConv2d),
    nn.Linear: _FamilyDispatch(EntangledLinear),
    nn.BatchNorm1d: _FamilyDispatch(EntangledBatchNorm1d),
    nn.BatchNorm2d: _FamilyDispatch(EntangledBatchNorm2d),
    nn.LayerNorm: _FamilyDispatch(EntangledLayerNorm),
    nn.MultiheadAttention: _FamilyDispatch(EntangledMultiheadAttention),
    BasicUnit: _FamilyDispatch(ComboUnit),  # any other basic unit
}
