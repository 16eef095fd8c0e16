"""The code examples of the reference documents (shared/seeds), with only the import changed to
``import supernet.nn as nn``. Where an example is a fragment, the smallest module around it makes it run;
where it is not PyTorch (the graph-level Mutator API), its module-level equivalent is tested."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

import supernet
import supernet.nn as nn


def _freezes(model: torch.nn.Module, *inputs: torch.Tensor, seeds: int = 5) -> None:
    for seed in range(seeds):
        net = supernet.freeze(model, supernet.sample(model, seed=seed))
        net(*inputs)


# -- seed 000 / 001: LayerChoice ----------------------------------------------------------------------
class PoolBN(nn.Module):
    def __init__(self, kind, channels, kernel, stride, padding):
        super().__init__()
        pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
        self.pool, self.bn = pool(kernel, stride, padding), nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.bn(self.pool(x))


class SepConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.op = nn.Sequential(nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in), nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        return self.op(x)


def test_layer_choice_example():
    class Net(nn.Module):
        def __init__(self, channels=8, stride=1):
            super().__init__()
            # declared in `__init__` method
            self.layer = nn.LayerChoice([
                PoolBN("max", channels, 3, stride, 1),
                SepConv(channels, channels, 3, stride, 1),
                nn.Identity()
            ])

        def forward(self, x):
            # invoked in `forward` method
            out = self.layer(x)
            return out

    net, x = Net(), torch.randn(2, 8, 6, 6)
    assert net(x).shape == x.shape
    assert supernet.search_space(net)["layer_choice_1"].options == ["0", "1", "2"]
    _freezes(net, x)


def test_layer_choice_ordered_dict_example_with_delete_and_replace():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.op_choice = nn.LayerChoice(OrderedDict([
                ("conv3x3", nn.Conv2d(3, 16, 128)),
                ("conv5x5", nn.Conv2d(5, 16, 128)),
                ("conv7x7", nn.Conv2d(7, 16, 128))
            ]))

    net = Net()
    del net.op_choice["conv5x5"]
    net.op_choice[1] = nn.Conv3d(3, 16, 3)
    assert net.op_choice.names == ["conv3x3", "conv7x7"]
    assert isinstance(net.op_choice["conv7x7"], torch.nn.Conv3d)


# -- InputChoice -----------------------------------------------------------------------------------
def test_input_choice_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # declared in `__init__` method (the reference's n_candidates is required)
            self.input_switch = nn.InputChoice(n_candidates=3, n_chosen=1)

        def forward(self, tensor1, tensor2, tensor3):
            # invoked in `forward` method, choose one from the three
            out = self.input_switch([tensor1, tensor2, tensor3])
            return out

    net = Net()
    a, b, c = torch.ones(1), 2 * torch.ones(1), 3 * torch.ones(1)
    assert net(a, b, c).item() == 1.0
    assert {supernet.freeze(net, supernet.sample(net, seed=s))(a, b, c).item() for s in range(20)} == {1.0, 2.0, 3.0}


def test_chosen_inputs_example():
    chosen = nn.ChosenInputs([0, 2], reduction="sum")
    assert chosen([torch.ones(1), torch.ones(1) * 5, torch.ones(1) * 2]).item() == 3.0


# -- ValueChoice -----------------------------------------------------------------------------------
def test_value_choice_in_conv_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, nn.ValueChoice([32, 64]), kernel_size=nn.ValueChoice([3, 5, 7]))

        def forward(self, x):
            return self.conv(x)

    net, x = Net(), torch.randn(1, 3, 9, 9)
    assert net(x).shape == (1, 32, 7, 7)
    assert supernet.search_space(net).size == 6
    _freezes(net, x)


def test_width_multiplier_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # init
            scale = nn.ValueChoice([1.0, 1.5, 2.0])
            self.conv1 = nn.Conv2d(3, round(scale * 16), 1)
            self.conv2 = nn.Conv2d(round(scale * 16), round(scale * 64), 1)
            self.conv3 = nn.Conv2d(round(scale * 64), round(scale * 256), 1)

        def forward(self, x):
            # forward
            return self.conv3(self.conv2(self.conv1(x)))

    net, x = Net(), torch.randn(1, 3, 4, 4)
    assert net(x).shape == (1, 256, 4, 4)
    for scale in (1.0, 1.5, 2.0):
        assert supernet.freeze(net, {"value_choice_1": scale})(x).shape == (1, round(scale * 256), 4, 4)


def test_kernel_and_padding_coupled_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # init
            ks = nn.ValueChoice([3, 5, 7])
            self.conv = nn.Conv2d(3, 16, kernel_size=ks, padding=(ks - 1) // 2)

        def forward(self, x):
            # forward
            return self.conv(x)

    net, x = Net(), torch.randn(1, 3, 10, 10)
    for ks in (3, 5, 7):
        assert supernet.freeze(net, {"value_choice_1": ks})(x).shape == (1, 16, 10, 10)


def test_concatenated_linear_layers_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # init
            self.linear1 = nn.Linear(3, nn.ValueChoice([1, 2, 3], label="a"))
            self.linear2 = nn.Linear(3, nn.ValueChoice([4, 5, 6], label="b"))
            self.final = nn.Linear(nn.ValueChoice([1, 2, 3], label="a") + nn.ValueChoice([4, 5, 6], label="b"), 2)

        def forward(self, x):
            # forward
            return self.final(torch.cat([self.linear1(x), self.linear2(x)], 1))

    net, x = Net(), torch.randn(4, 3)
    assert net(x).shape == (4, 2)
    assert supernet.search_space(net).labels == ["a", "b"]
    _freezes(net, x, seeds=9)


def test_label_sharing_examples():
    net = nn.Sequential(
        nn.Linear(10, nn.ValueChoice([32, 64, 128], label="hidden_dim")),
        nn.Linear(nn.ValueChoice([32, 64, 128], label="hidden_dim"), 3)
    )
    assert supernet.search_space(net).labels == ["hidden_dim"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            hidden_dim = nn.ValueChoice([128, 512])
            self.fc = nn.Sequential(
                nn.Linear(64, hidden_dim),
                nn.Linear(hidden_dim, 10)
            )

        def forward(self, x):
            return self.fc(x)

    shared = Net()
    assert len(supernet.search_space(shared)) == 1
    _freezes(shared, torch.randn(2, 64))


def test_value_choice_called_in_forward_example():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout_rate = nn.ValueChoice([0., 1.])

        def forward(self, x):
            return F.dropout(x, self.dropout_rate())

    net, x = Net(), torch.ones(4, 4)
    assert torch.equal(net(x), x)
    frozen = supernet.freeze(net, {"value_choice_1": 1.0})
    assert torch.equal(frozen(x), torch.zeros(4, 4))


def test_value_choice_for_loop_is_refused_with_advice():
    with pytest.raises(TypeError, match="nn.Repeat"):
        for _ in range(nn.ValueChoice([1, 2, 3])):
            pass


def test_condition_example():
    expr = nn.ValueChoice.condition(nn.ValueChoice([1, 2], label="x") > nn.ValueChoice([0, 3], label="y"), 2, 1)
    assert expr.evaluate([1, 0]) == 2 and expr.evaluate([1, 3]) == 1
    assert sorted(expr.all_options()) == [1, 2]


# -- ModelParameterChoice -----------------------------------------------------------------------------
def test_model_parameter_choice_examples():
    class Head(nn.Module):
        def forward(self, x):
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.has_auxiliary_head = nn.ModelParameterChoice([False, True])
            # this will raise error if you use `ValueChoice`
            if self.has_auxiliary_head is True:  # or self.has_auxiliary_head
                self.auxiliary_head = Head()
            else:
                self.auxiliary_head = None
            assert type(self.has_auxiliary_head) is bool
            # with ModelParameterChoice
            depth = nn.ModelParameterChoice(list(range(3, 10)))
            blocks = []
            for i in range(depth):
                blocks.append(nn.Linear(4, 4))
            self.blocks = nn.Sequential(*blocks)
            parameter_dim = nn.ModelParameterChoice([64, 128, 256])
            self.token = nn.Parameter(torch.zeros(1, parameter_dim, 32, 32))

    net = Net()
    assert net.auxiliary_head is None and len(net.blocks) == 3 and net.token.shape[1] == 64
    frozen = supernet.freeze(net, {"model_parameter_1": True, "model_parameter_2": 9, "model_parameter_3": 256})
    assert frozen.auxiliary_head is not None and len(frozen.blocks) == 9 and frozen.token.shape[1] == 256


# -- Repeat ---------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.fc(x))


@pytest.mark.parametrize("build", [
    lambda: nn.Repeat(Block(), 3),
    lambda: nn.Repeat(Block(), (1, 3)),
    lambda: nn.Repeat(nn.LayerChoice([nn.Linear(4, 4), nn.Identity()]), (1, 3)),
    lambda: nn.Repeat(lambda index: nn.LayerChoice([nn.Linear(4, 4), nn.Identity()], label=f"layer{index}"), (1, 3)),
    lambda: nn.Repeat(Block(), nn.ValueChoice([1, 3, 5])),
])
def test_repeat_examples(build):
    blocks = build()
    x = torch.randn(2, 4)
    assert blocks(x).shape == (2, 4)
    _freezes(blocks, x)


def test_repeat_copies_share_and_factories_separate_labels():
    shared = nn.Repeat(nn.LayerChoice([nn.Linear(4, 4), nn.Identity()]), (1, 3))
    separate = nn.Repeat(lambda index: nn.LayerChoice([nn.Linear(4, 4), nn.Identity()], label=f"layer{index}"), (1, 3))
    assert len(supernet.search_space(shared)) == 2
    assert supernet.search_space(separate).labels[1:] == ["layer0", "layer1", "layer2"]


# -- Cell -----------------------------------------------------------------------------------------------
def test_cell_examples():
    cell = nn.Cell([nn.Conv2d(32, 32, 3, padding=1), nn.MaxPool2d(3, padding=1, stride=1)], 4, 1, 2)
    input1, input2 = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    assert cell([input1, input2]).shape == (1, 128, 8, 8)
    only = nn.Cell([nn.Conv2d(32, 32, 3, padding=1), nn.MaxPool2d(3, padding=1, stride=1)], 4, 1, 1)
    assert only(input1).shape == (1, 128, 8, 8)
    three = nn.Cell([nn.Identity()], 2, 1, 3)
    assert three(input1, input2, input1).shape == (1, 64, 8, 8)
    _freezes(cell, [input1, input2])


def test_cell_loose_end_example():
    cell = nn.Cell([nn.Conv2d(32, 32, 3, padding=1), nn.MaxPool2d(3, padding=1, stride=1)], 4, 1, 2,
                   merge_op="loose_end")
    cell_out_channels = len(cell.output_node_indices) * 32
    assert cell_out_channels == 128
    x = torch.randn(1, 32, 8, 8)
    for seed in range(10):
        net = supernet.freeze(cell, supernet.sample(cell, seed=seed))
        assert net([x, x]).shape[1] == len(net.output_node_indices) * 32


def test_cell_factory_example():
    cell = nn.Cell([
        lambda node_index, op_index, input_index: nn.Conv2d(32, 32, 3, stride=2 if input_index is not None and
                                                            input_index < 1 else 1, padding=1),
    ], 4, 1, 2)
    x = torch.randn(1, 32, 8, 8)
    assert cell([x, x]).shape[1] == 128


def test_cell_preprocessor_example():
    class Preprocessor(nn.Module):  # the reference's class, as an nn.Module
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(16, 32, 1)
            self.conv2 = nn.Conv2d(64, 32, 1)

        def forward(self, x):
            return [self.conv1(x[0]), self.conv2(x[1])]

    cell = nn.Cell([nn.Conv2d(32, 32, 3, padding=1), nn.MaxPool2d(3, padding=1, stride=1)], 4, 1, 2,
                   preprocessor=Preprocessor())
    out = cell([torch.randn(1, 16, 48, 48), torch.randn(1, 64, 48, 48)])  # sent to conv1 and conv2
    assert out.shape == (1, 128, 48, 48)


# -- NAS-Bench cells, AutoActivation ---------------------------------------------------------------------
def test_nasbench101_cell_example():
    def conv_bn_relu(num_features):
        return nn.Sequential(
            nn.Conv2d(num_features, num_features, 1),
            nn.BatchNorm2d(num_features),
            nn.ReLU()
        )

    def projection_fn(in_features, out_features):
        return nn.Conv2d(in_features, out_features, 1)

    cell = nn.NasBench101Cell([conv_bn_relu], 8, 16, projection_fn)
    x = torch.randn(2, 8, 5, 5)
    assert cell(x).shape == (2, 16, 5, 5)
    _freezes(cell, x)


def test_nasbench201_cell_example():
    ops = OrderedDict([("conv", lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1)),
                       ("skip", lambda c_in, c_out: nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1))])
    cell = nn.NasBench201Cell(ops, 8, 8)
    assert supernet.search_space(cell).size == 2 ** 6
    _freezes(cell, torch.randn(1, 8, 4, 4))


def test_auto_activation_example():
    act = nn.AutoActivation(unit_num=2)
    x = torch.randn(3, 5)
    assert act(x).shape == x.shape
    _freezes(act, x)


# -- seed 002: a search space on a base model -----------------------------------------------------------
def test_mnist_base_model_with_layer_and_input_choice():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.LayerChoice([
                nn.Conv2d(1, 32, 3, 1),
                nn.Conv2d(1, 32, 5, 3)
            ])  # try 3x3 kernel and 5x5 kernel
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.conv3 = nn.Conv2d(64, 64, 1, 1)
            # declaring that there is exactly one candidate to choose from
            # search strategy will choose one or None
            self.skipcon = nn.InputChoice(n_candidates=1, n_chosen=None)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x0 = self.skipcon([x])  # choose one or none from [x]
            x = self.conv3(x)
            if x0 is not None:  # skipconnection is open
                x += x0
            x = F.max_pool2d(x, 2)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    net, x = Net(), torch.randn(2, 1, 28, 28)
    assert net(x).shape == (2, 10)
    closed = supernet.freeze(net, {"layer_choice_1": "0", "input_choice_1": []})
    assert closed(x).shape == (2, 10)
    _freezes(net, x)


# -- seed 003: mutators and placeholders -----------------------------------------------------------------
def test_block_mutator_on_placeholders():
    # the graph-level `model.get_nodes_by_label` / `node.update_operation` become module-level
    # `self.placeholders(model, label)` / `self.replace(model, name, module)`
    class BlockMutator(supernet.Mutator):
        def __init__(self, target, candidates):
            super().__init__()
            self.target = target
            self.candidate_op_list = candidates

        def mutate(self, model):
            for name, node in self.placeholders(model, self.target):
                chosen_op = self.choice(self.candidate_op_list)
                self.replace(model, name, chosen_op)

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.ph = nn.Placeholder(label="mutable_0", kernel_size_options=[1, 3, 5], n_layer_options=[1, 2, 3, 4])

        def forward(self, x):
            return self.ph(x)

    base = Base()
    assert base.ph.related_info["kernel_size_options"] == [1, 3, 5]
    space = BlockMutator("mutable_0", [nn.Conv2d(3, 3, k, padding=k // 2) for k in (1, 3, 5)]).apply(base)
    x = torch.randn(1, 3, 8, 8)
    assert space(x).shape == x.shape
    assert supernet.search_space(space).size == 3
    _freezes(space, x)


# -- seed 004: the tuner formats ---------------------------------------------------------------------------
def test_tuner_search_space_and_parameters_formats():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.op = nn.LayerChoice(OrderedDict([("op1_repr", nn.Identity()), ("op2_repr", nn.ReLU()),
                                                  ("op3_repr", nn.Tanh())]), label="key_name")
            self.inputs = nn.InputChoice(3, 1, label="input_key")

        def forward(self, x):
            return self.inputs([self.op(x), x, -x])

    net = Net()
    dumped = supernet.search_space(net).to_json()
    assert dumped["key_name"] == {"_type": "layer_choice", "_value": ["op1_repr", "op2_repr", "op3_repr"]}
    assert dumped["input_key"] == {"_type": "input_choice", "_value": {"candidates": ["0", "1", "2"], "n_chosen": 1}}
    parameters = {"key_name": {"_value": "op1_repr", "_idx": 0}, "input_key": {"_value": ["1"], "_idex": [1]}}
    x = torch.randn(2, 2)
    torch.testing.assert_close(supernet.freeze(net, parameters)(x), x)
