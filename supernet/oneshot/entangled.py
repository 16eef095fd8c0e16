"""Weight entanglement: basic units whose arguments are ValueChoices share one weight.

The mixed op holds the weight of the largest setting and computes with the slice the
chosen values need: leading channels, the centre of a kernel, the first heads' part of
an attention projection. ``sliced_state(values)`` is that slice as a state dict; the
forward pass and the weight-inheriting freeze both use it, so a frozen network computes
exactly what the supernet computed. Units without an entangled form (or with a choice on
an argument that changes no weight shape) fall back to ``ComboUnit``: one instance per
combination of values.

Families mix the same ops: path sampling computes with the current values;
differentiable search computes every combination and sums the outputs (zero-padded to
the largest) weighted by the product of the labels' mixing weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from supernet.oneshot.state import ArchState
from supernet.primitives.base import Choice
from supernet.primitives.basic_unit import BasicUnit
from supernet.primitives.value_choice import ValueChoiceX, contains_choice, evaluate_nested, leaf_choices

__all__ = ["ComboUnit", "EntangledUnit", "ENTANGLED_UNITS", "family_class"]


def _largest(value: Any) -> Any:
    if isinstance(value, ValueChoiceX):
        return _elementwise_max(value.all_options())
    if isinstance(value, (list, tuple)):
        return type(value)(_largest(v) for v in value)
    return value


def _elementwise_max(options: list[Any]) -> Any:
    """The largest option; of tuple options ((kh, kw) kernel sizes) the largest in each place: (5, 5) for
    (3, 5) and (5, 3), since each option's weight is a slice of the largest one."""
    if all(isinstance(o, (list, tuple)) for o in options) and len({len(o) for o in options}) == 1:
        return type(options[0])(_elementwise_max(list(column)) for column in zip(*options))
    return max(options)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pad_to(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if tensor.shape == shape:
        return tensor
    pad: list[int] = []
    for have, want in zip(reversed(tensor.shape), reversed(shape)):
        pad += [0, want - have]
    return F.pad(tensor, pad)


def _slice_dim(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """``x`` with ``size`` entries along ``dim``: the leading ones, zero-padded if it has fewer
    (a binary gate may try a wider value than the active path upstream produced)."""
    have = x.shape[dim]
    if have == size:
        return x
    if have > size:
        return x.narrow(dim, 0, size)
    shape = list(x.shape)
    shape[dim] = size - have
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


class _MixedUnit(BasicUnit):
    """What entangled and combination units share: their decisions and the two families' forward."""

    is_mixed = True
    _state: ArchState

    def leaves(self) -> list[Any]:
        return leaf_choices(self.init_arguments)

    def decisions(self) -> list[Choice]:
        return BasicUnit.decisions(self)

    def forward_with(self, values: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def add_alphas(self, state: ArchState) -> None:
        if state.family != "path_sampling":
            for leaf in self.leaves():
                state.add_alpha(leaf.label, len(state.space.choices[leaf.label].options))

    def _forward_path_sampling(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward_with(self._state.arch, *args, **kwargs)

    def _forward_differentiable(self, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        leaves = self.leaves()
        options = [state.space.choices[leaf.label].options for leaf in leaves]
        if state.pinned is not None:
            return self.forward_with(state.pinned, *args, **kwargs)
        weights = [state.weights(leaf.label) for leaf in leaves]
        outputs, coefficients = [], []
        for combination in itertools.product(*(range(len(o)) for o in options)):
            values = {leaf.label: options[n][i] for n, (leaf, i) in enumerate(zip(leaves, combination))}
            coefficient = weights[0][combination[0]]
            for w, i in zip(weights[1:], combination[1:]):
                coefficient = coefficient * w[i]
            outputs.append(self.forward_with(values, *args, **kwargs))
            coefficients.append(coefficient)
        first = outputs[0]
        rest = None
        if isinstance(first, tuple):  # e.g. attention's (output, weights): mix the output only
            outputs, rest = [o[0] for o in outputs], first[1:]
        shape = torch.Size(max(sizes) for sizes in zip(*(o.shape for o in outputs)))
        mixed = sum(c * _pad_to(o, shape) for c, o in zip(coefficients, outputs))
        return (mixed, *rest) if rest is not None else mixed

    def _forward_binary_gate(self, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        arch = dict(state.arch)
        output = self.forward_with(arch, *args, **kwargs)
        rest = None
        if isinstance(output, tuple):
            output, rest = output[0], output[1:]
        shape = output.shape

        def compute(label: str, value: Any) -> Any:
            other = self.forward_with({**arch, label: value}, *args, **kwargs)
            other = other[0] if isinstance(other, tuple) else other
            return _pad_to(other, torch.Size(max(a, b) for a, b in zip(other.shape, shape)))[
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
        largest = {k: _largest(v) for k, v in unit.init_arguments.items()}
        args, kwargs = unit.call_arguments(largest)
        cls.base_class.__init__(mixed, *args, **kwargs)
        object.__setattr__(mixed, "init_arguments", unit.init_arguments)
        object.__setattr__(mixed, "_state", state)
        mixed.train(unit.training)
        mixed.add_alphas(state)
        return mixed

    def values(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments under ``arch`` (remembered for the last architecture object seen)."""
        cached = self.__dict__.get("_values_cache")
        if cached is not None and cached[0] is arch:
            return cached[1]
        values = evaluate_nested(self.init_arguments, arch)
        self.__dict__["_values_cache"] = (arch, values)
        return values

    def sliced_state(self, values: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        args, kwargs = self.evaluated_arguments(arch)
        fixed = self.base_class(*args, **kwargs)
        fixed.load_state_dict(self.sliced_state(self.values(arch)))
        fixed.train(self.training)
        return fixed


class EntangledConv2d(EntangledUnit, nn.Conv2d):
    """Conv2d with choices of channels, kernel size (centre slice), stride, padding, dilation, groups."""

    base_class = nn.Conv2d
    searchable = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")

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

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        s = self.sliced_state(v)
        x = _slice_dim(x, 1, v["in_channels"])
        return F.conv2d(x, s["weight"], s.get("bias"), v.get("stride", 1), v.get("padding", 0),
                        v.get("dilation", 1), v.get("groups", 1))


class EntangledLinear(EntangledUnit, nn.Linear):
    """Linear with choices of in/out features (leading slices)."""

    base_class = nn.Linear
    searchable = ("in_features", "out_features")

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        state = {"weight": self.weight[: v["out_features"], : v["in_features"]]}
        if self.bias is not None:
            state["bias"] = self.bias[: v["out_features"]]
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        s = self.sliced_state(v)
        return F.linear(_slice_dim(x, -1, v["in_features"]), s["weight"], s.get("bias"))


class _EntangledBatchNorm(EntangledUnit):
    searchable = ("num_features", "eps", "momentum")

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        n = v["num_features"]
        state = {}
        if self.affine:
            state["weight"], state["bias"] = self.weight[:n], self.bias[:n]
        if self.track_running_stats:
            state["running_mean"], state["running_var"] = self.running_mean[:n], self.running_var[:n]
            state["num_batches_tracked"] = self.num_batches_tracked
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        """Normalise the leading ``num_features`` channels; the running statistics of the widest
        setting are updated in their leading slice only.

        The momentum is the module's ``momentum`` attribute, as for a plain BatchNorm (so
        ``momentum = None``, a cumulative average, works here too: SPOS's recalibration), unless
        the architecture searches it and the attribute is not ``None``.
        """
        v = self.values(arch)
        n = v["num_features"]
        momentum = self.momentum
        if momentum is not None and contains_choice(self.init_arguments.get("momentum")):
            momentum = v["momentum"]
        use_batch_stats = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            _slice_dim(x, 1, n),
            self.running_mean[:n] if self.track_running_stats else None,
            self.running_var[:n] if self.track_running_stats else None,
            self.weight[:n] if self.affine else None, self.bias[:n] if self.affine else None,
            use_batch_stats, momentum if momentum is not None else 0.0, v.get("eps", self.eps))


class EntangledBatchNorm1d(_EntangledBatchNorm, nn.BatchNorm1d):
    base_class = nn.BatchNorm1d


class EntangledBatchNorm2d(_EntangledBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d with a choice of channels (leading slice of weights and running statistics)."""

    base_class = nn.BatchNorm2d


class EntangledLayerNorm(EntangledUnit, nn.LayerNorm):
    """LayerNorm over the last dimension with a choice of its size."""

    base_class = nn.LayerNorm
    searchable = ("normalized_shape", "eps")

    def _size(self, v: Mapping[str, Any]) -> int:
        shape = v["normalized_shape"]
        if isinstance(shape, (list, tuple)):
            if len(shape) != 1:
                raise ValueError("an entangled LayerNorm normalises one (the last) dimension")
            shape = shape[0]
        return int(shape)

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        n = self._size(v)
        state = {}
        if self.weight is not None:
            state["weight"] = self.weight[:n]
        if self.bias is not None:
            state["bias"] = self.bias[:n]
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        v = self.values(arch)
        n = self._size(v)
        s = self.sliced_state(v)
        return F.layer_norm(_slice_dim(x, -1, n), (n,), s.get("weight"), s.get("bias"), v.get("eps", 1e-5))


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
        if arguments.get("kdim") is not None or arguments.get("vdim") is not None or arguments.get("bias_k"):
            return family_class(ComboUnit, state).from_primitive(unit, state)
        return super().from_primitive(unit, state)

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        e, big = v["embed_dim"], self.embed_dim
        w = self.in_proj_weight
        state = {"in_proj_weight": torch.cat([w[i * big: i * big + e, :e] for i in range(3)]),
                 "out_proj.weight": self.out_proj.weight[:e, :e]}
        if self.in_proj_bias is not None:
            b = self.in_proj_bias
            state["in_proj_bias"] = torch.cat([b[i * big: i * big + e] for i in range(3)])
            state["out_proj.bias"] = self.out_proj.bias[:e]
        return state

    def forward_with(self, arch: Mapping[str, Any], query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, **kwargs: Any) -> Any:
        v = self.values(arch)
        e = v["embed_dim"]
        s = self.sliced_state(v)
        query, key, value = (_slice_dim(t, -1, e) for t in (query, key, value))
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            query, key, value, e, v["num_heads"], s["in_proj_weight"], s.get("in_proj_bias"), None, None,
            self.add_zero_attn, v.get("dropout", 0.0), s["out_proj.weight"], s.get("out_proj.bias"),
            training=self.training, key_padding_mask=kwargs.get("key_padding_mask"),
            need_weights=kwargs.get("need_weights", True), attn_mask=kwargs.get("attn_mask"),
            average_attn_weights=kwargs.get("average_attn_weights", True), is_causal=kwargs.get("is_causal", False))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


class ComboUnit(_MixedUnit, nn.Module):
    """Any basic unit: one instance per combination of its choices' values (no weight sharing)."""

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

    def forward_with(self, arch: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        return self.combinations[self._index(arch)](*args, **kwargs)

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
