"""search_space, sample, freeze formats, labels and mutators."""

from __future__ import annotations

import json

import pytest
import torch

import supernet
import supernet.nn as nn
from tests.conftest import assert_plain
from tests.test_primitives import CellSpace, RepeatSpace, ValueChoiceSpace


class AutoLabelled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.LayerChoice([nn.ReLU(), nn.Tanh()])
        self.b = nn.Repeat(lambda i: nn.LayerChoice([nn.ReLU(), nn.Tanh()]), (1, 2))
        self.c = nn.Linear(3, nn.ValueChoice([2, 4]))
        self.d = nn.InputChoice(2, 1)


def test_automatic_labels_are_the_same_when_the_space_is_built_twice():
    first, second = supernet.search_space(AutoLabelled()), supernet.search_space(AutoLabelled())
    assert first.labels == second.labels
    assert first.labels == ["layer_choice_1", "repeat_1", "repeat_1/0/layer_choice_1", "repeat_1/1/layer_choice_1",
                            "value_choice_1", "input_choice_1"]


def test_automatic_labels_survive_freezing_by_rebuild():
    space = AutoLabelled()
    arch = supernet.sample(space, seed=4)
    net = supernet.freeze(space, arch)
    assert net.c.out_features == arch["value_choice_1"]
    assert len(net.b) == arch["repeat_1"]


def test_search_space_lists_candidates_prior_kind_and_exact_size():
    ss = supernet.search_space(ValueChoiceSpace())
    assert ss.labels == ["width", "ks", "drop", "heads"]
    assert ss["width"].kind == "value_choice" and ss["width"].options == [8, 16, 24]
    assert ss.size == 3 * 3 * 2 * 3
    assert "54 architectures" in str(ss)


def test_size_of_a_large_space_is_an_exact_integer():
    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(*[nn.LayerChoice([nn.ReLU(), nn.Tanh(), nn.GELU()], label=f"l{i}")
                                          for i in range(40)])

    assert supernet.search_space(Deep()).size == 3 ** 40


def test_tuner_json_format_of_seed_004():
    space = CellSpace()
    dumped = supernet.search_space(space).to_json()
    assert dumped["cell/op_2_0"] == {"_type": "layer_choice", "_value": ["conv", "pool", "skip"]}
    assert dumped["cell/input_3_1"] == {"_type": "input_choice", "_value": {"candidates": ["0", "1", "2"],
                                                                             "n_chosen": 1}}
    assert json.loads(supernet.search_space(ValueChoiceSpace()).dumps())["width"] == {
        "_type": "choice", "_value": [8, 16, 24]}


def test_freeze_accepts_the_parameters_format_of_seed_004():
    space = CellSpace()
    arch = supernet.sample(space, seed=0)
    params = {}
    for label, value in arch.items():
        if "/input_" in label:
            params[label] = {"_value": [str(v) for v in value], "_idx": value}
        else:
            params[label] = {"_value": value, "_idx": ["conv", "pool", "skip"].index(value)}
    a, b = supernet.freeze(space, arch), supernet.freeze(space, params)
    assert str(a) == str(b)


def test_sample_is_deterministic_for_a_seed_and_covers_options():
    space = RepeatSpace()
    assert supernet.sample(space, seed=7) == supernet.sample(space, seed=7)
    depths = {supernet.sample(space, seed=s)["shared_depth"] for s in range(30)}
    assert depths == {0, 1, 2}


def test_freeze_leaves_the_space_unchanged_and_can_inherit_weights():
    space = ValueChoiceSpace()
    before = {k: v.clone() for k, v in space.state_dict().items()}
    arch = {"width": 8, "ks": 1, "drop": 0.0, "heads": 2}
    fresh = supernet.freeze(space, arch)
    inherited = supernet.freeze(space, arch, inherit_weights=True)
    for k, v in space.state_dict().items():
        torch.testing.assert_close(v, before[k])
    torch.testing.assert_close(inherited.conv.weight, space.conv.weight)
    assert not torch.equal(fresh.conv.weight, space.conv.weight)


def test_inherit_weights_slices_kernels_at_the_centre():
    conv = nn.Conv2d(2, nn.ValueChoice([4, 2], label="c"), nn.ValueChoice([5, 3], label="k"))
    fixed = supernet.freeze(conv, {"c": 2, "k": 3}, inherit_weights=True)
    torch.testing.assert_close(fixed.weight, conv.weight[:2, :, 1:4, 1:4])


def test_freeze_of_a_plain_torch_model_with_choices_works_on_a_copy():
    model = torch.nn.Sequential(nn.LayerChoice([nn.Linear(3, 3), nn.Linear(3, 3, bias=False)], label="lin"),
                                nn.ReLU())
    net = supernet.freeze(model, {"lin": "1"}, inherit_weights=True)
    assert_plain(net)
    torch.testing.assert_close(net[0].weight, model[0][1].weight)
    assert isinstance(model[0], nn.LayerChoice)


class BaseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.block = nn.Placeholder("block", kernel_size_options=[1, 3, 5])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


class KernelMutator(supernet.Mutator):
    def mutate(self, model):
        for name, placeholder in self.placeholders(model, "block"):
            options = placeholder.related_info["kernel_size_options"]
            self.replace(model, name, self.choice(
                [nn.Conv2d(8, 8, k, padding=k // 2) for k in options], label="block_kernel"))


def test_mutator_turns_placeholders_into_choices_that_freeze():
    base = BaseNet()
    space = KernelMutator().apply(base)
    assert isinstance(base.block, nn.Placeholder), "the base model is left as it was"
    ss = supernet.search_space(space)
    assert ss.labels == ["block_kernel"] and ss.size == 3
    net = supernet.freeze(space, {"block_kernel": "2"})
    assert_plain(net)
    assert net.block.kernel_size == (5, 5)
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 2)


def test_unreplaced_placeholder_is_a_clear_error():
    with pytest.raises(ValueError, match="Placeholder 'block'.*Mutator"):
        supernet.search_space(BaseNet())


def test_fixed_arch_builds_a_plain_network_directly():
    with supernet.fixed_arch({"width": 16, "ks": 3, "drop": 0.1, "heads": 4}):
        net = ValueChoiceSpace()
    assert_plain(net)
    assert net.conv.out_channels == 16 and net.attn.num_heads == 4


def test_a_number_equal_to_an_option_is_taken_as_the_option_the_space_declares():
    """JSON readers may give 12.0 for 12: validate returns the declared option, so freeze builds with an int."""
    class Widths(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, nn.ValueChoice([8, 12], label="width"), 3)

        def forward(self, x):
            return self.conv(x)

    arch = supernet.search_space(Widths()).validate({"width": 12.0})
    assert arch == {"width": 12} and type(arch["width"]) is int
    assert supernet.freeze(Widths(), {"width": 12.0})(torch.randn(1, 3, 8, 8)).shape == (1, 12, 6, 6)


def test_a_tuner_index_out_of_range_or_naming_another_value_is_refused_by_validate():
    space = supernet.search_space(ValueChoiceSpace())
    label, choice = next((k, c) for k, c in space.items() if c.kind == "value_choice")
    count = len(choice.options)
    with pytest.raises(ValueError, match=rf"_idx {count} is out of range: the decision has {count} options"):
        space.validate({label: {"_value": choice.options[0], "_idx": count}})
    with pytest.raises(ValueError, match=r"_idx 1 is .*, but _value is"):
        space.validate({label: {"_value": choice.options[0], "_idx": 1}})
    entry = {"_value": choice.options[1], "_idx": 1}
    assert space.validate({**space.default_arch(), label: entry})[label] == choice.options[1]
