"""The one-shot engine: conversion, the two invariants, the registry, exports."""

from __future__ import annotations

import copy
import weakref

import pytest
import torch

import supernet
import supernet.nn as nn
from supernet.oneshot import convert, export_arch, register_mixed_op
from supernet.primitives.base import Choice, Mutable
from supernet.primitives.nasbench import FixedNasBench101Cell
from tests.test_primitives import SPACES, CellSpace, ValueChoiceSpace

CONVERTIBLE = [name for name in SPACES if name not in ("model_parameter_choice", "input_choice_any_subset")]
NO_BINARY_GATE = ["input_choice_mean"]


def _supernets(space):
    path_sampling, sampling_state = convert(copy.deepcopy(space), "path_sampling")
    differentiable, differentiable_state = convert(copy.deepcopy(space), "differentiable")
    x = torch.randn(2, 4, 6, 6)
    path_sampling(x)
    differentiable.load_state_dict(path_sampling.state_dict())  # one set of weights for both
    return path_sampling.eval(), sampling_state, differentiable.eval(), differentiable_state, x


# binary gates choose single inputs only (the n_chosen=2 space is tested as a conversion error below)
SAMPLING_CASES = [(name, family) for family in ("path_sampling", "binary_gate") for name in CONVERTIBLE
                  if not (family == "binary_gate" and name in NO_BINARY_GATE)]


@pytest.mark.parametrize(("name", "family"), SAMPLING_CASES)
def test_sampling_supernet_and_inherited_freeze_compute_the_same(name, family):
    space = SPACES[name][0]()
    net, state = convert(copy.deepcopy(space), family)
    x = torch.randn(2, 4, 6, 6)
    net(x)
    net.eval()
    for seed in range(10):
        arch = supernet.sample(space, seed=seed)
        state.set_arch(arch)
        frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
        torch.testing.assert_close(net(x), frozen(x))


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_differentiable_supernet_with_one_hot_weights_equals_path_sampling(name):
    space = SPACES[name][0]()
    sampling, sampling_state, mixing, mixing_state, x = _supernets(space)
    for seed in range(10):
        arch = supernet.sample(space, seed=seed)
        sampling_state.set_arch(arch)
        mixing_state.pin(arch)
        torch.testing.assert_close(mixing(x), sampling(x))


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_differentiable_supernet_trains_the_architecture_weights(name):
    space = SPACES[name][0]()
    net, state = convert(copy.deepcopy(space), "differentiable")
    net(torch.randn(2, 4, 6, 6)).sum().backward()
    assert len(state.alpha) > 0
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in state.alpha.values())
    arch = export_arch(net, state)
    assert set(arch) == set(supernet.search_space(space).labels)
    supernet.freeze(space, arch)(torch.randn(2, 4, 6, 6))


def test_differentiable_nasbench101_cell_sends_gradients_to_ops_edges_and_node_count():
    space = SPACES["nasbench101_cell"][0]()
    net, state = convert(copy.deepcopy(space), "differentiable")
    net(torch.randn(2, 4, 6, 6)).square().mean().backward()
    graph = export_arch(net, state)
    label = next(lab for lab in graph if lab.endswith("/num_nodes"))
    cell = label.rsplit("/", 1)[0]
    assert state.alpha_of(label).grad.abs().sum() > 0
    inputs = {i: graph[f"{cell}/input{i}"] for i in range(1, graph[label])}
    live, _ = FixedNasBench101Cell.plan(graph[label], inputs, 4)
    live_ops = [f"{cell}/op{i}" for i in live if i != graph[label] - 1]
    assert live_ops and all(state.alpha_of(op).grad.abs().sum() > 0 for op in live_ops)
    edges = [f"{cell}/input{i}" for i in range(1, graph[label])]
    assert any(state.alpha_of(edge).grad.abs().sum() > 0 for edge in edges)


def test_binary_gate_nasbench101_cell_gives_every_sampled_label_a_gradient_and_exports_a_valid_cell():
    space = SPACES["nasbench101_cell"][0]()
    net, state = convert(copy.deepcopy(space), "binary_gate")
    state.arch_gradients = True
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        state.sample_binary_gates(generator=generator)
        net(torch.randn(2, 4, 6, 6)).square().mean().backward()
    assert sum(float(a.grad.abs().sum()) > 0 for a in state.alpha.values() if a.grad is not None) >= 3
    arch = export_arch(net, state)  # validated: within max_num_edges, output reachable
    supernet.freeze(space, arch)(torch.randn(2, 4, 6, 6))


def test_only_modules_with_choices_are_replaced():
    class Space(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 1)
            self.op = nn.LayerChoice([nn.Conv2d(4, 4, 1), nn.Identity()], label="op")

    net, _ = convert(Space(), "path_sampling")
    assert type(net.stem) is torch.nn.Conv2d
    assert type(net.op[0]) is torch.nn.Conv2d


def test_a_label_has_one_architecture_parameter_shared_by_its_modules():
    shared = nn.Sequential(nn.LayerChoice([nn.ReLU(), nn.Tanh()], label="act"),
                           nn.LayerChoice([nn.ReLU(), nn.Tanh()], label="act"))
    _, state = convert(shared, "differentiable")
    assert state.labels() == ["act"]


def test_entangled_weights_are_slices_of_the_largest():
    space = ValueChoiceSpace()
    net, state = convert(copy.deepcopy(space), "path_sampling")
    assert net.conv.weight.shape == (24, 4, 5, 5)
    arch = {"width": 8, "ks": 3, "drop": 0.0, "heads": 2}
    state.set_arch(arch)
    frozen = supernet.freeze(net, arch, inherit_weights=True)
    torch.testing.assert_close(frozen.conv.weight, net.conv.weight[:8, :, 1:4, 1:4])
    torch.testing.assert_close(frozen.attn.in_proj_weight[8:16], net.attn.in_proj_weight[24:32, :8])


def test_gumbel_softmax_weights_change_with_the_noise():
    net, state = convert(CellSpace(), "differentiable")
    state.gumbel, state.temperature = True, 0.5
    label = state.labels()[0]
    state.resample_noise()
    first = state.weights(label).detach().clone()
    state.resample_noise()
    assert not torch.allclose(first, state.weights(label))
    net(torch.randn(1, 4, 6, 6))


def test_darts_cell_export_takes_best_operator_per_edge_and_strongest_edges():
    net, state = convert(CellSpace(), "differentiable")
    with torch.no_grad():
        for alpha in state.alpha.values():
            alpha.zero_()
        # node 2: edge from 1 strongly prefers 'pool'; edge from 0 mildly prefers 'conv'
        state.alpha_of("cell/edge_2_1")[1] = 5.0
        state.alpha_of("cell/edge_2_0")[0] = 1.0
        # the zero operator never wins an edge, even when its weight is largest
        state.alpha_of("cell/edge_3_2")[3] = 9.0
        state.alpha_of("cell/edge_3_2")[2] = 8.5
    arch = export_arch(net, state)
    assert (arch["cell/op_2_0"], arch["cell/input_2_0"]) == ("pool", [1])
    assert (arch["cell/op_2_1"], arch["cell/input_2_1"]) == ("conv", [0])
    assert (arch["cell/op_3_0"], arch["cell/input_3_0"]) == ("skip", [2])
    assert export_arch(net, state) == arch, "export is deterministic"


class Scale(Mutable, nn.Module):
    """A user-defined primitive: multiply by a chosen factor."""

    def __init__(self, factors, label):
        super().__init__()
        self.factors, self.label = list(factors), label

    def decisions(self):
        return [Choice(self.label, "value_choice", self.factors)]

    def forward(self, x):
        return x * self.factors[0]

    def freeze(self, arch):
        return _Times(arch[self.label])


class _Times(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class PathSamplingScale(Scale):
    is_mixed = True

    @classmethod
    def from_primitive(cls, module, state):
        module.__class__ = cls
        module._state = state
        return module

    def forward(self, x):
        return x * self._state.arch[self.label]


def test_a_user_primitive_becomes_searchable_with_one_registration():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), Scale([1.0, 3.0], "scale"))
    with pytest.raises(TypeError, match=r"^1: Scale has no path_sampling mixed op"):
        convert(copy.deepcopy(model), "path_sampling")
    register_mixed_op(Scale, "path_sampling", PathSamplingScale)
    net, state = convert(model, "path_sampling")
    state.set_arch({"scale": 3.0})
    x = torch.randn(1, 2)
    torch.testing.assert_close(net(x), net[0](x) * 3)
    torch.testing.assert_close(supernet.freeze(net, {"scale": 3.0}, inherit_weights=True)(x), net(x))


def test_unsupported_primitive_fails_at_conversion_naming_path_and_primitive():
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Sequential(Scale([1.0, 2.0], "factor")))
    with pytest.raises(TypeError, match=r"^1\.0: Scale has no differentiable mixed op"):
        convert(model, "differentiable")
    with pytest.raises(TypeError, match="pick: InputChoice 'pick' with reduction 'concat'"):
        convert(SPACES["input_choice_any_subset"][0](), "differentiable")
    with pytest.raises(TypeError, match="pick: InputChoice 'pick' with n_chosen=2 has no binary-gate mixed op"):
        convert(SPACES["input_choice_mean"][0](), "binary_gate")


def test_binary_gates_give_the_proxylessnas_gradient_on_the_sampled_paths():
    torch.manual_seed(1)
    candidates = [torch.nn.Linear(3, 3) for _ in range(3)]
    net, state = convert(nn.LayerChoice(candidates, label="op"), "binary_gate")
    with torch.no_grad():
        state.alpha_of("op").copy_(torch.tensor([0.3, -0.2, 0.5]))
    state.gate_paths = {"op": ["0", "2"]}
    state.set_arch({"op": "2"})
    state.arch_gradients = True
    x = torch.randn(4, 3)
    y = net(x)
    torch.testing.assert_close(y, candidates[2](x))  # the value is the active path's
    target = torch.randn(4, 3)
    loss = ((y - target) ** 2).sum()
    loss.backward()
    grad_y = (2 * (candidates[2](x) - target)).detach()
    grad_gate = [float((grad_y * candidates[j](x)).sum().detach()) for j in (0, 2)]
    p = torch.softmax(torch.tensor([0.3, 0.5]), 0)
    expected = [sum(grad_gate[j] * p[j] * (float(i == j) - p[i]) for j in range(2)) for i in range(2)]
    alpha_grad = state.alpha_of("op").grad
    torch.testing.assert_close(alpha_grad[[0, 2]], torch.tensor(expected, dtype=torch.float32))
    assert alpha_grad[1] == 0


def test_binary_gate_sampling_follows_the_probabilities():
    _, state = convert(nn.LayerChoice([torch.nn.ReLU(), torch.nn.Tanh(), torch.nn.GELU()], label="op"),
                       "binary_gate")
    with torch.no_grad():
        state.alpha_of("op").copy_(torch.tensor([0.0, 0.0, 10.0]))
    generator = torch.Generator().manual_seed(0)
    actives = [state.sample_binary_gates(generator=generator)["op"] for _ in range(50)]
    assert actives.count("2") > 40
    assert all(len(state.gate_paths["op"]) == 2 for _ in range(1))


def test_binary_gates_run_only_the_active_path_forward_and_the_other_in_backward():
    calls = []

    class Counted(torch.nn.Linear):
        def forward(self, x):
            calls.append((self.tag, torch.is_grad_enabled()))
            return super().forward(x)

    candidates = [Counted(3, 3) for _ in range(3)]
    for i, candidate in enumerate(candidates):
        candidate.tag = str(i)
    net, state = convert(nn.LayerChoice(candidates, label="op"), "binary_gate")
    state.gate_paths, state.arch_gradients = {"op": ["0", "2"]}, True
    state.set_arch({"op": "2"})
    loss = net(torch.randn(4, 3)).sum()
    assert calls == [("2", True)]  # forward holds one path's activations
    loss.backward()
    assert calls == [("2", True), ("0", False)]


def test_binary_gate_steps_release_their_graphs():
    space = CellSpace()
    net, state = convert(copy.deepcopy(space), "binary_gate")
    state.arch_gradients = True
    seen = []
    for edge_op in net.modules():
        if isinstance(edge_op, torch.nn.Conv2d):
            edge_op.register_forward_pre_hook(lambda module, args: seen.append(weakref.ref(args[0])))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        state.sample_binary_gates(generator=generator)
        net(torch.randn(2, 4, 6, 6)).sum().backward()
    assert seen and all(ref() is None for ref in seen)  # no cell state outlives its step
