"""The architecture state of a supernet: one entry per label, shared by every mixed op with it.

Path-sampling ops read the current architecture (``set_arch``); differentiable ops read
mixing weights computed from one architecture-parameter tensor per label (softmax, or
Gumbel-softmax at a temperature the algorithm sets). Tests and exports can pin the
weights to exact one-hot values with ``set_weights``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from supernet.primitives.base import Choice
from supernet.space import SearchSpace

__all__ = ["ArchState", "map_tensors"]


def map_tensors(fn: Any, first: Any, *rest: Any) -> Any:
    """``fn`` applied to tensors, element by element through tuples and lists (blocks may pass tuples);
    a None (an output not computed, e.g. attention weights) stays None where every argument has it."""
    if isinstance(first, (tuple, list)):
        return type(first)(map_tensors(fn, *items) for items in zip(first, *rest))
    if first is None or any(r is None for r in rest):
        if first is None and all(r is None for r in rest):
            return None
        raise ValueError("the outputs to combine hold None in different places; candidates must return None in "
                         "the same places of their tuples")
    return fn(first, *rest)


class _GateGradient(torch.autograd.Function):
    """The active output, passed through; backward gives each sampled path's gate its gradient
    ``<dL/dy, y_path>``, computing the other paths' outputs then, without autograd."""

    @staticmethod
    def forward(ctx: Any, probs: torch.Tensor, active_output: torch.Tensor, paths: list[Any],
                compute: Callable[[str, Any], Any]) -> torch.Tensor:
        ctx.paths, ctx.compute, ctx.dtype = paths, compute, probs.dtype
        ctx.save_for_backward(active_output)
        # A separate tensor (one activation more per gate, in architecture steps only): later layers may modify
        # the output in place (BatchNorm -> ReLU(inplace=True)); a returned view would make that an error and an
        # alias would overwrite the saved active output (tests/test_engine_speed.py, in-place test)
        return active_output.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (active_output,) = ctx.saved_tensors
        dots = []
        with torch.no_grad():
            for path in ctx.paths:
                output = active_output if path is None else ctx.compute(*path)
                dots.append((grad.float() * output.float()).sum())
        ctx.compute = None  # it holds inputs of the mixed op; release them with the graph
        return torch.stack(dots).to(ctx.dtype), grad, None, None


def _as_in_forward(compute: Callable[..., Any]) -> Callable[..., Any]:
    """``compute`` to be run later, during backward, under the autocast state of now (forward): backward
    does not inherit it, and the other paths must see what the active one saw (bf16 inputs, fp32 weights)."""
    states = [(d, torch.get_autocast_dtype(d)) for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)]
    if not states:
        return compute

    def run(*args: Any) -> Any:
        with contextlib.ExitStack() as stack:
            for device, dtype in states:
                stack.enter_context(torch.autocast(device, dtype=dtype))
            return compute(*args)

    return run


def _key(label: str) -> str:
    return label.replace(".", "::")  # parameter names cannot contain '.'


class ArchState(nn.Module):
    """Architecture parameters (``alpha``) and the sampled architecture of a converted model."""

    def __init__(self, space: SearchSpace, family: str = "path_sampling") -> None:
        super().__init__()
        self.space = space
        self.family = family
        self.alpha = nn.ParameterDict()
        self.arch: dict[str, Any] = space.default_arch()
        self.temperature = 1.0
        self.gumbel = False
        self.gumbel_hard = False
        self.pinned: dict[str, Any] | None = None
        self.weight_override: dict[str, torch.Tensor] = {}  # label -> weights given from outside (a sampler)
        self._noise: dict[str, torch.Tensor] = {}
        self._value_choices: list[Any] = []
        self.gate_paths: dict[str, list[Any]] = {}
        self.arch_gradients = False

    # -- parameters ------------------------------------------------------------------------------
    def add_alpha(self, label: str, size: int) -> nn.Parameter:
        """The architecture parameter of ``label`` (created at the first request, shared after)."""
        key = _key(label)
        if key not in self.alpha:
            self.alpha[key] = nn.Parameter(1e-3 * torch.randn(size))
        elif self.alpha[key].numel() != size:
            raise ValueError(f"label {label!r} asks for {size} architecture weights but has "
                             f"{self.alpha[key].numel()}")
        return self.alpha[key]

    def alpha_of(self, label: str) -> nn.Parameter:
        return self.alpha[_key(label)]

    def labels(self) -> list[str]:
        """Labels that have architecture parameters."""
        return [k.replace("::", ".") for k in self.alpha]

    def choice(self, label: str) -> Choice:
        return self.space.choices[label]

    # -- path sampling ----------------------------------------------------------------------------
    def set_arch(self, arch: Mapping[str, Any]) -> None:
        """Use ``arch`` (complete or partial, validated) for every path-sampling op."""
        self.arch = self.space.validate(arch)
        for leaf in self._value_choices:
            leaf.current = self.arch.get(leaf.label)

    def value(self, label: str) -> Any:
        return self.arch[label]

    # -- differentiable ---------------------------------------------------------------------------
    def resample_noise(self, generator: torch.Generator | None = None) -> None:
        """New Gumbel noise for every label (once per step with ``gumbel=True``)."""
        self._noise = {}
        if self.gumbel:
            for key, alpha in self.alpha.items():
                uniform = torch.rand(alpha.shape, generator=generator).clamp_(1e-9, 1 - 1e-9)
                self._noise[key] = -torch.log(-torch.log(uniform))

    def clear_noise(self) -> None:
        """Mix with the plain softmax again (evaluation), until the next ``resample_noise``."""
        self._noise = {}

    def weights(self, label: str) -> torch.Tensor:
        """Mixing weights from ``label``'s architecture parameters (they sum to 1).

        With Gumbel noise drawn (``resample_noise``) they are the soft Gumbel-softmax sample
        ``softmax((alpha + g) / temperature)`` (the relaxation of SNAS, Xie et al. 2019); with
        ``gumbel_hard`` they are GDAS's straight-through form (Dong & Yang 2019, §3.2): exactly
        one-hot on the sample's argmax in the forward pass, the soft sample's gradient backward.
        """
        override = self.weight_override.get(label)
        if override is not None:  # a sampler's float mask (supernet.oneshot.sampler) replaces the softmax
            return override
        key = _key(label)
        alpha = self.alpha[key]
        noise = self._noise.get(key)
        if noise is not None:
            alpha = alpha + noise.to(alpha.device)
        soft = torch.softmax(alpha / self.temperature, dim=-1)
        if noise is None or not self.gumbel_hard:
            return soft
        hard = torch.zeros_like(soft).scatter_(-1, soft.detach().argmax(-1, keepdim=True), 1.0)
        return hard - soft.detach() + soft

    def pin(self, arch: Mapping[str, Any] | None) -> None:
        """Make differentiable ops mix with exact one-hot weights on ``arch`` (None: use alpha again).

        With the weights pinned, a differentiable supernet computes what the path-sampling
        supernet computes on ``arch``; tests use this to check the two agree.
        """
        if arch is None:
            self.pinned = None
            return
        self.set_arch(arch)
        self.pinned = self.arch

    # -- binary gates (ProxylessNAS) -------------------------------------------------------------
    def alpha_values(self, label: str) -> list[Any]:
        """The values that ``label``'s architecture parameters stand for, in order."""
        choice = self.space.choices[label]
        if choice.kind == "input_choice" and choice.n_chosen is not None:
            return [[i] for i in range(choice.n_candidates or 0)]
        return list(choice.options)  # any-subset input choices: one weight per subset

    def sample_binary_gates(self, paths: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Sample ``paths`` candidates per label from its probabilities and make one of them active.

        The active ones form the architecture that runs; with ``arch_gradients`` the others
        of each label only contribute the binary-gate gradient of the architecture weights.
        """
        for _ in range(100):  # redraw when the active paths break a constraint (NAS-Bench-101 edges)
            arch, gate_paths = dict(self.arch), {}
            for key, alpha in self.alpha.items():
                label = key.replace("::", ".")
                if label not in self.space.choices:
                    continue
                values = self.alpha_values(label)
                probs = torch.softmax(alpha.detach().float().cpu() / self.temperature, -1)
                count = min(paths, len(values))
                picked = torch.multinomial(probs, count, replacement=False, generator=generator)
                renormalised = probs[picked] / probs[picked].sum()
                active = picked[torch.multinomial(renormalised, 1, generator=generator)].item()
                gate_paths[label] = [values[int(i)] for i in picked]
                arch[label] = values[int(active)]
            try:
                self.set_arch(arch)
            except ValueError:
                continue
            self.gate_paths = gate_paths
            return self.arch
        raise RuntimeError("no binary-gate sample met the space's constraints in 100 draws")

    def gate(self, label: str, active_output: Any, compute: Callable[[Any], Any]) -> Any:
        """Add the binary-gate gradient of ``label`` to the active path's output (see ``gates``)."""
        return self.gates([label], active_output, lambda _, value: compute(value))

    def gates(self, labels: Sequence[str], active_output: Any, compute: Callable[[str, Any], Any]) -> Any:
        """Add the binary-gate gradients of ``labels`` to the active path's output.

        ``compute(label, value)`` gives the output with ``label`` at ``value`` and the other
        labels active; it runs without autograd, during backward (under the forward's autocast
        state), so forward keeps only the active path's activations. The value stays the active
        output; the gradient reaching ``alpha[label]`` is the ProxylessNAS estimate
        ``sum_j dL/dg_j * p_j (delta_ij - p_i)`` over the sampled paths, with ``dL/dg_j = <dL/dy, y_j>``.
        """
        labels = [label for label in labels if label in self.gate_paths]
        if not (self.arch_gradients and torch.is_grad_enabled()) or not labels:
            return active_output
        compute = _as_in_forward(compute)  # every mixed op's other paths, run in backward, see the forward's autocast
        probs, paths = [], []
        for label in labels:
            values = self.alpha_values(label)
            alpha = self.alpha_of(label)
            probs.append(torch.softmax(alpha[[values.index(v) for v in self.gate_paths[label]]] / self.temperature, -1))
            paths += [None if value == self.arch[label] else (label, value) for value in self.gate_paths[label]]
        if isinstance(active_output, torch.Tensor):
            return _GateGradient.apply(torch.cat(probs), active_output, paths, compute)
        output = active_output  # a tuple or list of tensors: keep the other paths' outputs from forward
        for p, path in zip(torch.cat(probs), paths):
            if path is None:
                other = map_tensors(torch.Tensor.detach, active_output)
            else:
                with torch.no_grad():
                    other = compute(*path)
            output = map_tensors(lambda out, o, p=p: out + (p - p.detach()) * o, output, other)
        return output

    # -- export -----------------------------------------------------------------------------------
    def argmax_arch(self) -> dict[str, Any]:
        """The most likely value of every label with parameters; the current value elsewhere."""
        arch = dict(self.arch)
        for key, alpha in self.alpha.items():
            label = key.replace("::", ".")
            if label in self.space.choices:
                arch[label] = self.space.choices[label].options[int(alpha.detach().argmax())]
        return arch
