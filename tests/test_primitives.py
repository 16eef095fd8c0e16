"""Each primitive: default forward, search-space entry, and >= 20 frozen samples that run."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import supernet
import supernet.nn as nn
from tests.conftest import assert_plain


class LayerChoiceSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.op = nn.LayerChoice(OrderedDict([
            ("conv3x3", nn.Conv2d(4, 8, 3, padding=1)),
            ("conv5x5", nn.Conv2d(4, 8, 5, padding=2)),
            ("nested", nn.LayerChoice([nn.Conv2d(4, 8, 1), nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU())],
                                      label="inner")),
        ]), label="op")

    def forward(self, x):
        return self.op(x)


class InputChoiceSpace(nn.Module):
    def __init__(self, n_chosen=1, reduction="sum") -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(4, 8, 1), nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(4, 8, 5, padding=2)
        self.pick = nn.InputChoice(3, n_chosen, reduction, label="pick")

    def forward(self, x):
        out = self.pick([self.a(x), self.b(x), self.c(x)])
        if out is None:
            return torch.zeros(x.shape[0], 8, *x.shape[2:])
        return torch.cat(out, 1)[:, :8] if isinstance(out, list) else out[:, :8]


class ValueChoiceSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        width = nn.ValueChoice([8, 16, 24], label="width")
        ks = nn.ValueChoice([1, 3, 5], label="ks")
        self.conv = nn.Conv2d(4, width, ks, padding=(ks - 1) // 2)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(nn.ValueChoice([0.0, 0.1], label="drop"))
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, nn.ValueChoice([1, 2, 4], label="heads"), batch_first=True)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = self.drop(self.bn(self.conv(x))).mean((2, 3))
        seq = self.norm(x).unsqueeze(1)
        return self.fc(self.attn(seq, seq, seq)[0].squeeze(1))


class RepeatSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Repeat(nn.LayerChoice([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1)], label="kind"),
                                (0, 2), label="shared_depth")
        self.independent = nn.Repeat(
            lambda i: nn.LayerChoice([nn.ReLU(), nn.Tanh()], label=f"act{i}"), nn.ValueChoice([1, 3], label="d2"))

    def forward(self, x):
        return self.independent(self.shared(x))


class CellSpace(nn.Module):
    def __init__(self, merge_op="all") -> None:
        super().__init__()
        self.cell = nn.Cell({
            "conv": lambda node, op, inp: nn.Conv2d(4, 4, 3, padding=1),
            "pool": nn.MaxPool2d(3, 1, 1),
            "skip": nn.Identity(),
        }, num_nodes=3, num_ops_per_node=2, num_predecessors=2, merge_op=merge_op, label="cell")
        self.head = nn.Linear(1, 10)

    def forward(self, x):
        return self.head(self.cell(x, x).sum((1, 2, 3)).unsqueeze(1))


def _nb201_ops():
    return OrderedDict([
        ("none", lambda c_in, c_out: _Zero()),
        ("skip", lambda c_in, c_out: nn.Identity()),
        ("conv1x1", lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1)),
        ("conv3x3", lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1)),
        ("pool", lambda c_in, c_out: nn.AvgPool2d(3, 1, 1)),
    ])


class _Zero(nn.Module):
    def forward(self, x):
        return x * 0


class NasBench201Space(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.NasBench201Cell(_nb201_ops(), 4, 4, label="nb201")

    def forward(self, x):
        return self.cell(x)


class NasBench101Space(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        ops = {"conv1x1": lambda c: nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU()),
               "conv3x3": lambda c: nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()),
               "maxpool": lambda c: nn.MaxPool2d(3, 1, 1)}
        self.cell = nn.NasBench101Cell(ops, 4, 8, lambda i, o: nn.Conv2d(i, o, 1), max_num_nodes=5,
                                       max_num_edges=6, label="nb101")

    def forward(self, x):
        return self.cell(x)


class AutoActivationSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.AutoActivation(unit_num=2, label="act")

    def forward(self, x):
        return self.act(x)


class ModelParameterSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        depth = nn.ModelParameterChoice([1, 2, 3], label="mp_depth")
        self.layers = nn.Sequential(*[nn.Conv2d(4, 4, 1) for _ in range(depth)])
        channels = nn.ModelParameterChoice([4, 8], label="mp_channels")
        self.token = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return self.layers(x).sum(1, keepdim=True) + self.token.sum()


@nn.basic_unit
class ScaledConv(torch.nn.Module):
    """A user module taking ValueChoice arguments through @basic_unit."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, channels, 1)
        self.scale = scale

    def forward(self, x):
        return self.conv(x) * self.scale


class BasicUnitSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unit = ScaledConv(nn.ValueChoice([2, 6], label="ch"), nn.ValueChoice([0.5, 2.0], label="scale"))

    def forward(self, x):
        return self.unit(x)


SPACES = {
    "layer_choice": (LayerChoiceSpace, (8, 6, 6)),
    "input_choice": (InputChoiceSpace, (8, 6, 6)),
    "input_choice_any_subset": (lambda: InputChoiceSpace(None, "concat"), (8, 6, 6)),
    "input_choice_mean": (lambda: InputChoiceSpace(2, "mean"), (8, 6, 6)),
    "value_choice": (ValueChoiceSpace, (10,)),
    "repeat": (RepeatSpace, (4, 6, 6)),
    "cell": (CellSpace, (10,)),
    "cell_loose_end": (lambda: CellSpace("loose_end"), (10,)),
    "nasbench201_cell": (NasBench201Space, (4, 6, 6)),
    "nasbench101_cell": (NasBench101Space, (8, 6, 6)),
    "auto_activation": (AutoActivationSpace, (4, 6, 6)),
    "model_parameter_choice": (ModelParameterSpace, (1, 6, 6)),
    "basic_unit": (BasicUnitSpace, None),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_space_runs_forward_at_its_defaults(name):
    build, shape = SPACES[name]
    out = build()(torch.randn(2, 4, 6, 6))
    if shape is not None:
        assert out.shape == (2, *shape)


@pytest.mark.parametrize("name", list(SPACES))
def test_twenty_sampled_architectures_freeze_to_plain_networks_that_run(name):
    build, shape = SPACES[name]
    space = build()
    x = torch.randn(2, 4, 6, 6)
    seen = set()
    for seed in range(20):
        arch = supernet.sample(space, seed=seed)
        seen.add(repr(arch))
        net = supernet.freeze(space, arch)
        assert_plain(net)
        out = net(x)
        if shape is not None:
            assert out.shape == (2, *shape)
        else:
            assert out.shape[1] == arch["ch"]
    assert len(seen) > 1, "sampling should vary across seeds"


def test_frozen_network_is_trainable_and_state_dict_loadable():
    space = ValueChoiceSpace()
    arch = supernet.sample(space, seed=3)
    net = supernet.freeze(space, arch)
    loss = net(torch.randn(4, 4, 6, 6)).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    again = supernet.freeze(space, arch)
    again.load_state_dict(net.state_dict())
    net.eval(), again.eval()
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(net(x), again(x))


def test_torch_export_works_on_frozen_conv_and_linear_networks():
    space = ValueChoiceSpace()
    net = supernet.freeze(space, supernet.sample(space, seed=1)).eval()
    program = torch.export.export(net, (torch.randn(2, 4, 6, 6),))
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(program.module()(x), net(x))


class TestLayerChoice:
    def test_names_len_iteration_and_item_access(self):
        lc = nn.LayerChoice([nn.ReLU(), nn.Tanh(), nn.Sigmoid()], label="act")
        assert lc.names == ["0", "1", "2"] and len(lc) == 3
        assert [type(m).__name__ for m in lc] == ["ReLU", "Tanh", "Sigmoid"]
        assert isinstance(lc[1], torch.nn.Tanh) and isinstance(lc["2"], torch.nn.Sigmoid)

    def test_delete_and_replace_candidates(self):
        lc = nn.LayerChoice(OrderedDict([("a", nn.ReLU()), ("b", nn.Tanh()), ("c", nn.Sigmoid())]), label="x")
        del lc["b"]
        assert lc.names == ["a", "c"]
        lc[1] = nn.GELU()
        assert isinstance(lc["c"], torch.nn.GELU)
        assert supernet.search_space(lc)["x"].options == ["a", "c"]

    def test_prior_is_respected_by_sampling(self):
        lc = nn.LayerChoice([nn.ReLU(), nn.Tanh()], prior=[0.0, 1.0], label="p")
        assert {supernet.sample(lc, seed=s)["p"] for s in range(10)} == {"1"}

    def test_nested_choice_is_inactive_unless_its_candidate_is_chosen(self):
        space = LayerChoiceSpace()
        ss = supernet.search_space(space)
        assert ss.size == 2 + 2  # conv3x3, conv5x5, nested x 2
        net = supernet.freeze(space, {"op": "conv3x3"})  # 'inner' may be left out
        assert isinstance(net.op, torch.nn.Conv2d)


class TestInputChoice:
    def test_returns_none_when_nothing_is_chosen(self):
        ic = nn.InputChoice(1, None, label="skip")
        fixed = supernet.freeze(ic, {"skip": []})
        assert fixed([torch.ones(1)]) is None

    def test_reductions(self):
        xs = [torch.full((1, 2), float(i)) for i in range(3)]
        for reduction, expected in [("sum", 3.0), ("mean", 1.5)]:
            fixed = supernet.freeze(nn.InputChoice(3, 2, reduction, label="r"), {"r": [1, 2]})
            assert fixed(xs)[0, 0].item() == expected
        assert supernet.freeze(nn.InputChoice(3, 2, "concat", label="r"), {"r": [0, 2]})(xs).shape == (1, 4)
        assert len(supernet.freeze(nn.InputChoice(3, 2, "none", label="r"), {"r": [0, 2]})(xs)) == 2

    def test_any_subset_space_size(self):
        assert supernet.search_space(nn.InputChoice(4, None)).size == 2 ** 4
        assert supernet.search_space(nn.InputChoice(5, 2)).size == 10


class TestValueChoice:
    def test_expression_algebra(self):
        a, b = nn.ValueChoice([1, 2, 3], label="a"), nn.ValueChoice([4, 6], label="b")
        expr = round((a * b + 1) / 2)
        assert [c.label for c in expr.inner_choices()] == ["a", "b"]
        assert expr.evaluate([3, 6]) == round(19 / 2)
        assert sorted(nn.ValueChoice.max(a, b - 3).all_options()) == [1, 2, 3]
        cond = nn.ValueChoice.condition(a > 1, 10, 20)
        assert cond.evaluate([1]) == 20 and cond.evaluate([2]) == 10
        assert nn.ValueChoice.to_int(a * 1.5).evaluate([3]) == 4
        assert nn.ValueChoice.to_float(a).evaluate([2]) == 2.0
        assert (a == 2).evaluate([2]) is True and (a != 2).evaluate([2]) is False
        assert (a // 2 + a % 2 - abs(-a)).evaluate([3]) == 1 + 1 - 3

    def test_helpers_compute_at_once_on_plain_values(self):
        assert nn.ValueChoice.max(3, 5) == 5 and nn.ValueChoice.min([3, 5]) == 3
        assert nn.ValueChoice.condition(True, 1, 2) == 1 and nn.ValueChoice.to_int(2.7) == 2

    def test_a_choice_has_no_truth_value_or_int(self):
        a = nn.ValueChoice([1, 2], label="a")
        with pytest.raises(TypeError, match="condition"):
            bool(a)
        with pytest.raises(TypeError, match="Repeat"):
            range(a)

    def test_callable_in_forward_returns_default_then_the_chosen_value(self):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rate = nn.ValueChoice([0.25, 0.5], label="rate")

            def forward(self, x):
                return x * self.rate()

        net = Net()
        assert net(torch.ones(1)).item() == 0.25
        assert supernet.freeze(net, {"rate": 0.5})(torch.ones(1)).item() == 0.5

    def test_same_label_is_the_same_decision(self):
        net = nn.Sequential(nn.Linear(10, nn.ValueChoice([32, 64], label="hidden")),
                            nn.Linear(nn.ValueChoice([32, 64], label="hidden"), 3))
        assert supernet.search_space(net).labels == ["hidden"]
        frozen = supernet.freeze(net, {"hidden": 64})
        assert frozen[0].out_features == 64 and frozen[1].in_features == 64


class TestRepeat:
    def test_deep_copies_share_labels_and_factories_do_not(self):
        ss = supernet.search_space(RepeatSpace())
        assert ss.labels == ["shared_depth", "kind", "d2", "act0", "act1", "act2"]
        # shared: depth 0 (1 net) + depths 1, 2 (2 each); independent: d=1 -> 2, d=3 -> 8
        assert ss.size == (1 + 2 + 2) * (2 + 8)

    def test_frozen_repeat_is_sequential_of_chosen_depth(self):
        net = supernet.freeze(RepeatSpace(), {"shared_depth": 2, "kind": "1", "d2": 1, "act0": "1"})
        assert isinstance(net.shared, torch.nn.Sequential) and len(net.shared) == 2
        assert len(net.independent) == 1 and isinstance(net.independent[0], torch.nn.Tanh)

    def test_zero_depth_is_identity(self):
        net = supernet.freeze(RepeatSpace(), {"shared_depth": 0, "kind": "0", "d2": 1, "act0": "0"})
        assert len(net.shared) == 0

    def test_list_of_blocks_takes_a_prefix(self):
        rep = nn.Repeat([nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2)], (1, 3), label="r")
        assert len(supernet.freeze(rep, {"r": 2})) == 2


class TestCell:
    def test_labels_follow_node_indices(self):
        ss = supernet.search_space(CellSpace())
        assert "cell/op_2_0" in ss and "cell/input_4_1" in ss
        assert ss["cell/input_4_1"].options == [[0], [1], [2], [3]]
        assert ss.size == (3 * 2) ** 2 * (3 * 3) ** 2 * (3 * 4) ** 2

    def test_loose_end_concatenates_unused_nodes(self):
        space = CellSpace("loose_end")
        arch = {label: ("skip" if "/op_" in label else [0]) for label in supernet.search_space(space).labels}
        arch["cell/input_3_0"] = [2]
        net = supernet.freeze(space, arch)
        assert net.cell.output_node_indices == [3, 4]

    def test_called_with_list_varargs_or_single_tensor(self):
        cell = nn.Cell([nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(3, 1, 1)], 2, 1, 1, label="c")
        x = torch.randn(1, 4, 5, 5)
        assert cell(x).shape == cell([x]).shape == (1, 8, 5, 5)
        two = nn.Cell([nn.Identity()], 2, 1, 2, label="c2")
        assert two(x, x).shape == two([x, x]).shape == (1, 8, 5, 5)

    def test_factory_gets_the_chosen_input_index_when_frozen(self):
        calls = []

        def op(node_index, op_index, input_index):
            calls.append((node_index, op_index, input_index))
            return nn.Identity()

        cell = nn.Cell([op], 2, 1, 2, label="c")
        assert (2, 0, None) in calls
        calls.clear()
        supernet.freeze(cell, {"c/op_2_0": "0", "c/input_2_0": [1], "c/op_3_0": "0", "c/input_3_0": [2]})
        assert (2, 0, 1) in calls and (3, 0, 2) in calls

    def test_pre_and_postprocessor(self):
        class Pre(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = torch.nn.Conv2d(2, 4, 1), torch.nn.Conv2d(6, 4, 1)

            def forward(self, xs):
                return [self.a(xs[0]), self.b(xs[1])]

        cell = nn.Cell([nn.Identity()], 2, 1, 2, preprocessor=Pre(),
                       postprocessor=lambda out, preds: (out, preds[1]), concat_dim=1, label="c")
        out, prev = cell([torch.randn(1, 2, 3, 3), torch.randn(1, 6, 3, 3)])
        assert out.shape == (1, 8, 3, 3) and prev.shape == (1, 6, 3, 3)


class TestNasBench:
    def test_nasbench201_space_size(self):
        assert supernet.search_space(NasBench201Space()).size == 5 ** 6

    def test_nasbench101_samples_respect_max_edges_and_connectivity(self):
        space = NasBench101Space()
        for seed in range(20):
            arch = supernet.sample(space, seed=seed)
            n = arch["nb101/num_nodes"]
            assert sum(len(arch[f"nb101/input{i}"]) for i in range(1, n)) <= 6

    def test_nasbench101_rejects_too_many_edges(self):
        space = NasBench101Space()
        arch = {"nb101/num_nodes": 5, "nb101/op1": "conv1x1", "nb101/op2": "conv1x1", "nb101/op3": "maxpool",
                "nb101/input1": [0], "nb101/input2": [0, 1], "nb101/input3": [0, 1, 2], "nb101/input4": [0, 3]}
        with pytest.raises(ValueError, match="8 edges, more than max_num_edges=6"):
            supernet.freeze(space, arch)

    def test_nasbench101_size_counts_connected_graphs(self):
        # 3 nodes max: n=2: the single edge IN->OUT (1 graph); n=3: edges 0-1, 0-2, 1-2 with a path 0 -> 2:
        # {0-2}, {0-1,1-2}, {0-2,0-1}, {0-2,1-2}, {all} = 5 graphs, times 2 ops for the hidden node
        ops = {"a": lambda c: nn.Identity(), "b": lambda c: nn.ReLU()}
        cell = nn.NasBench101Cell(ops, 2, 2, lambda i, o: nn.Identity(), max_num_nodes=3, max_num_edges=9)
        assert supernet.search_space(cell).size == 1 + 5 * 2


class TestModelParameterChoice:
    def test_plain_value_at_build_and_chosen_value_when_frozen(self):
        space = ModelParameterSpace()
        assert len(space.layers) == 1
        ss = supernet.search_space(space)
        assert ss.labels[:2] == ["mp_depth", "mp_channels"]
        net = supernet.freeze(space, {"mp_depth": 3, "mp_channels": 8})
        assert len(net.layers) == 3 and net.token.shape[1] == 8

    def test_default_can_pick_the_last_candidate(self):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.n = nn.ModelParameterChoice([1, 2, 3], default=nn.ModelParameterChoice.LAST(), label="n")

        assert Net().n == 3

    def test_must_be_created_inside_a_space_constructor(self):
        with pytest.raises(RuntimeError, match="supernet.nn.Module"):
            nn.ModelParameterChoice([1, 2])
