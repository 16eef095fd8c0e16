"""Seed 004's sampler interface: masks map onto the engine's architecture state, RandomMutator, hooks."""

from __future__ import annotations

import json
import math

import pytest
import torch

import supernet
import supernet.nn as nn
from supernet.oneshot import RandomMutator, Sampler, convert
from tests.test_primitives import CellSpace


class MixedSpace(nn.Module):
    """A ValueChoice (entangled kernel), a LayerChoice, an InputChoice and a Repeat in a row."""

    def __init__(self) -> None:
        super().__init__()
        ks = nn.ValueChoice([1, 3, 5], label="ks")
        self.stem = nn.Conv2d(3, 8, ks, padding=(ks - 1) // 2)
        self.op = nn.LayerChoice({"conv": nn.Conv2d(8, 8, 3, padding=1), "pool": nn.AvgPool2d(3, 1, 1),
                                  "tanh": nn.Tanh()}, label="op")
        self.branches = nn.ModuleList([nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1), nn.Identity()])
        self.pick = nn.InputChoice(3, 1, label="pick")
        self.blocks = nn.Repeat(lambda i: nn.Conv2d(8, 8, 3, padding=1), (1, 3), label="depth")
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.op(torch.relu(self.stem(x)))
        x = self.pick([b(x) for b in self.branches])
        return self.head(self.blocks(x).mean((2, 3)))


class InputsSpace(nn.Module):
    """Three branches reduced by an InputChoice (``n_chosen`` of 3, any subset if None)."""

    def __init__(self, n_chosen=2, reduction="sum") -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)])
        self.pick = nn.InputChoice(3, n_chosen, reduction, label="pick")

    def forward(self, x):
        out = self.pick([b(x) for b in self.branches])
        return torch.zeros(x.shape[0], 4, *x.shape[2:]) if out is None else out


class Fixed(Sampler):
    """A sampler that applies given masks and exports given masks (for the tests)."""

    def __init__(self, model, search=None, final=None, family=None) -> None:
        self.search, self.final = search, final
        super().__init__(model, family=family)

    def sample_search(self):
        return self.search

    def sample_final(self):
        return self.final


def onehot(index, length):
    return torch.arange(length) == index


X = torch.randn(2, 3, 6, 6)


def _frozen_output(sampler, arch):
    return supernet.freeze(sampler.model, arch, inherit_weights=True).eval()(X)


# -- Bool masks are paths ----------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["path_sampling", "differentiable"])
def test_one_hot_bool_masks_make_the_model_compute_exactly_that_candidate(family):
    sampler = Fixed(MixedSpace(), family=family)
    sampler.model.eval()
    options = {"ks": [1, 3, 5], "op": ["conv", "pool", "tanh"], "depth": [1, 2, 3]}
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):
        index = {label: int(torch.randint(3, (1,), generator=generator)) for label in ("ks", "op", "pick", "depth")}
        sampler.search = {label: onehot(i, 3) for label, i in index.items()}
        sampler.reset()
        arch = {label: options[label][i] for label, i in index.items() if label != "pick"} | {"pick": [index["pick"]]}
        assert sampler.arch == arch
        torch.testing.assert_close(sampler.model(X), _frozen_output(sampler, arch), rtol=0, atol=0)


def test_bool_masks_of_an_input_choice_select_those_inputs_and_reduce_them():
    for n_chosen, reduction, mask in [(2, "sum", [True, False, True]), (2, "mean", [False, True, True]),
                                      (None, "sum", [False, False, False]), (None, "sum", [True, True, True])]:
        sampler = Fixed(InputsSpace(n_chosen, reduction), search={"pick": torch.tensor(mask)})
        sampler.reset()
        branches = [b(X) for b in sampler.model.branches]
        chosen = [out for out, m in zip(branches, mask) if m]
        expected = torch.zeros(2, 4, 6, 6) if not chosen else sum(chosen) / (len(chosen) if reduction == "mean" else 1)
        torch.testing.assert_close(sampler.model(X), expected)
        assert sampler.arch == {"pick": [i for i, m in enumerate(mask) if m]}


def test_bool_masks_drive_a_cell_in_both_families():
    arch = supernet.sample(CellSpace(), seed=3)
    for family in ("path_sampling", "differentiable"):
        sampler = Fixed(CellSpace(), family=family)
        sampler.search = sampler.arch_to_masks(arch)
        sampler.reset()
        assert sampler.arch == supernet.search_space(sampler.model).validate(arch)
        x = torch.randn(2, 4, 6, 6)
        frozen = supernet.freeze(sampler.model, arch, inherit_weights=True)
        torch.testing.assert_close(sampler.model(x), frozen(x))


def test_masks_and_architectures_convert_both_ways():
    sampler = Fixed(MixedSpace())
    arch = {"ks": 5, "op": "pool", "pick": [2], "depth": 1}
    masks = sampler.arch_to_masks(arch)
    assert {label: m.tolist() for label, m in masks.items()} == {
        "ks": [False, False, True], "op": [False, True, False], "pick": [False, False, True],
        "depth": [True, False, False]}
    assert sampler.masks_to_arch(masks) == arch


# -- float masks are weightings -----------------------------------------------------------------------
def test_float_mask_of_a_layer_choice_is_the_weighted_sum_of_its_candidates_and_sends_gradients():
    space = nn.LayerChoice([nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 3, padding=1), nn.Identity()], label="op")
    theta = torch.tensor([0.3, -1.0, 0.5], requires_grad=True)
    sampler = Fixed(space, family="differentiable", search={"op": torch.softmax(theta, 0)})
    sampler.reset()
    x = torch.randn(2, 3, 6, 6)
    sampler.model(x).square().sum().backward()
    reference = theta.detach().clone().requires_grad_()
    weights = torch.softmax(reference, 0)
    by_hand = sum(weights[i] * sampler.model[i](x) for i in range(3))
    by_hand.square().sum().backward()
    torch.testing.assert_close(sampler.model(x), by_hand)
    torch.testing.assert_close(theta.grad, reference.grad)
    assert sampler.arch is None  # a weighting is not one architecture


class AffineSpace(nn.Module):
    """An entangled kernel size, then a variable depth of convolutions, with nothing non-linear between."""

    def __init__(self) -> None:
        super().__init__()
        ks = nn.ValueChoice([1, 3, 5], label="ks")
        self.stem = nn.Conv2d(3, 4, ks, padding=(ks - 1) // 2)
        self.blocks = nn.Repeat(lambda i: nn.Conv2d(4, 4, 3, padding=1), (1, 3), label="depth")

    def forward(self, x):
        return self.blocks(self.stem(x))


def test_float_masks_of_a_value_choice_and_a_repeat_weight_the_frozen_candidates():
    # the blocks are affine and the kernel weights sum to 1, so blocks(sum_i w_i stem_i(x)) is
    # sum_i w_i blocks(stem_i(x)), and the whole output is sum_ij w_i v_j frozen_ij(x)
    weights = {"ks": torch.tensor([0.2, 0.5, 0.3]), "depth": torch.tensor([0.6, 0.0, 0.4])}
    sampler = Fixed(AffineSpace(), family="differentiable", search=weights)
    sampler.reset()
    by_hand = sum(weights["ks"][i] * weights["depth"][j] * _frozen_output(sampler, {"ks": ks, "depth": depth})
                  for i, ks in enumerate([1, 3, 5]) for j, depth in enumerate([1, 2, 3]))
    torch.testing.assert_close(sampler.model(X), by_hand)


def test_float_mask_of_a_single_input_choice_weights_the_inputs():
    mask = torch.tensor([0.25, 0.0, 0.75])
    sampler = Fixed(InputsSpace(1), family="differentiable", search={"pick": mask})
    sampler.reset()
    branches = [b(X) for b in sampler.model.branches]
    torch.testing.assert_close(sampler.model(X), 0.25 * branches[0] + 0.75 * branches[2])


def test_bool_masks_after_float_masks_compute_the_path_again():
    sampler = Fixed(MixedSpace(), family="differentiable")
    sampler.model.eval()
    sampler.search = {"ks": torch.tensor([0.2, 0.5, 0.3]), "op": torch.full((3,), 1 / 3),
                      "pick": torch.tensor([0.5, 0.5, 0.0]), "depth": torch.tensor([0.6, 0.0, 0.4])}
    sampler.reset()
    arch = {"ks": 3, "op": "conv", "pick": [0], "depth": 2}
    sampler.search = sampler.arch_to_masks(arch)
    sampler.reset()
    torch.testing.assert_close(sampler.model(X), _frozen_output(sampler, arch), rtol=0, atol=0)


# -- export ---------------------------------------------------------------------------------------------
def test_export_returns_the_final_masks_as_a_valid_architecture_and_leaves_the_model_as_it_is():
    path = {"ks": 1, "op": "tanh", "pick": [0], "depth": 3}
    final = {"ks": 5, "op": "conv", "pick": [1], "depth": 2}
    sampler = Fixed(MixedSpace(), search=None, final=None)
    sampler.search, sampler.final = sampler.arch_to_masks(path), sampler.arch_to_masks(final)
    sampler.reset()
    exported = sampler.export()
    assert exported == supernet.search_space(sampler.model).validate(final) == final
    assert json.loads(json.dumps(exported)) == exported
    assert sampler.arch == path  # export does nothing to the model
    supernet.freeze(sampler.model, exported)(X)


def test_export_refuses_float_final_masks():
    sampler = Fixed(MixedSpace(), family="differentiable")
    sampler.final = {**sampler.arch_to_masks({"ks": 5, "op": "conv", "pick": [1], "depth": 2}),
                     "op": torch.tensor([0.2, 0.7, 0.1])}
    with pytest.raises(ValueError, match=r"'op'.*architecture.*Bool"):
        sampler.export()


# -- RandomMutator -------------------------------------------------------------------------------------------
def _frequency_bound(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)  # five standard deviations of a binomial frequency


def test_random_mutator_draws_each_candidate_with_uniform_frequency():
    n = 3000
    mutator = RandomMutator(MixedSpace(), generator=torch.Generator().manual_seed(1))
    counts = {label: torch.zeros(3) for label in ("ks", "op", "pick", "depth")}
    for _ in range(n):
        mutator.reset()
        for label, mask in mutator.masks.items():
            assert mask.dtype == torch.bool and int(mask.sum()) == 1
            counts[label] += mask
    for label, count in counts.items():
        assert (count / n - 1 / 3).abs().max() < _frequency_bound(1 / 3, n), (label, count)


@pytest.mark.parametrize(("n_chosen", "subsets"), [(2, 3), (None, 8)])
def test_random_mutator_draws_input_subsets_uniformly(n_chosen, subsets):
    n = 4000
    mutator = RandomMutator(InputsSpace(n_chosen), generator=torch.Generator().manual_seed(2))
    seen = {}
    for _ in range(n):
        mutator.reset()
        key = tuple(mutator.arch["pick"])
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == subsets
    assert all(abs(c / n - 1 / subsets) < _frequency_bound(1 / subsets, n) for c in seen.values()), seen


def test_random_mutator_is_reproducible_and_sets_a_path_at_construction():
    first = RandomMutator(MixedSpace(), generator=torch.Generator().manual_seed(7))
    second = RandomMutator(MixedSpace(), generator=torch.Generator().manual_seed(7))
    assert first.arch == second.arch and first.arch is not None  # a path is active at once (seed 004)
    archs = []
    for mutator in (first, second):
        archs.append([])
        for _ in range(20):
            mutator.reset()
            archs[-1].append(mutator.arch)
    assert archs[0] == archs[1] and len({json.dumps(a) for a in archs[0]}) > 5
    torch.manual_seed(3)
    a = RandomMutator(MixedSpace()).arch
    torch.manual_seed(3)
    assert RandomMutator(MixedSpace()).arch == a  # without a generator it follows torch's global seed


def test_random_mutator_binds_to_a_converted_supernet_and_its_state():
    net, state = convert(MixedSpace(), "path_sampling")
    mutator = RandomMutator(net, generator=torch.Generator().manual_seed(0))
    assert mutator.state is state and mutator.model is net
    mutator.reset()
    assert state.arch == mutator.arch
    with pytest.raises(ValueError, match="differentiable.*path_sampling"):
        RandomMutator(net, family="differentiable")


# -- hooks ------------------------------------------------------------------------------------------------
def test_on_forward_hooks_decide_how_layer_and_input_choices_run():
    calls = []

    class Hooked(Fixed):
        def on_forward_layer_choice(self, op, *args, **kwargs):
            calls.append((op.label, self.masks[op.label].tolist()))
            return 2 * super().on_forward_layer_choice(op, *args, **kwargs)

        def on_forward_input_choice(self, op, inputs):
            calls.append((op.label, len(inputs)))
            return -super().on_forward_input_choice(op, inputs)

    arch = {"ks": 3, "op": "pool", "pick": [2], "depth": 1}
    plain = Fixed(MixedSpace())
    hooked = Hooked(MixedSpace())
    hooked.model.load_state_dict(plain.model.state_dict())
    for sampler in (plain, hooked):
        sampler.search = sampler.arch_to_masks(arch)
        sampler.reset()
    stem = torch.relu(plain.model.stem(X))
    picked = -(2 * plain.model.op(stem))  # the Identity branch of the picked input
    expected = plain.model.head(plain.model.blocks(picked).mean((2, 3)))
    torch.testing.assert_close(hooked.model(X), expected)
    assert calls == [("op", [False, True, False]), ("pick", 3)]
    assert "forward" not in vars(plain.model.op)  # no hook is installed where none is overridden


# -- bad masks ---------------------------------------------------------------------------------------------
GOOD = {"ks": onehot(0, 3), "op": onehot(1, 3), "pick": onehot(2, 3), "depth": onehot(0, 3)}
BAD = {
    "unknown label": ({**GOOD, "opp": onehot(0, 3)}, "path_sampling",
                      r"unknown label 'opp'.*\['ks', 'op', 'pick', 'depth'\]"),
    "wrong length": ({**GOOD, "op": onehot(0, 4)}, "path_sampling", r"'op'.*length 4.*3 .*\['conv', 'pool', 'tanh'\]"),
    "two True": ({**GOOD, "op": torch.tensor([True, True, False])}, "path_sampling", r"'op'.*2 True.*exactly one"),
    "no True": ({**GOOD, "ks": torch.zeros(3, dtype=torch.bool)}, "path_sampling", r"'ks'.*0 True.*exactly one"),
    "input count": ({**GOOD, "pick": torch.tensor([True, True, False])}, "path_sampling",
                    r"'pick'.*2 True.*exactly 1 .*n_chosen=1"),
    "NaN": ({**GOOD, "op": torch.tensor([0.5, float("nan"), 0.5])}, "differentiable", r"'op'.*NaN.*finite"),
    "inf": ({**GOOD, "op": torch.tensor([0.5, float("inf"), 0.5])}, "differentiable", r"'op'.*inf.*finite"),
    "float on paths": ({**GOOD, "op": torch.tensor([0.5, 0.5, 0.0])}, "path_sampling",
                       r"'op'.*float mask.*differentiable"),
    "not a tensor": ({**GOOD, "op": [True, False, False]}, "path_sampling", r"'op'.*BoolTensor or a FloatTensor.*list"),
    "int dtype": ({**GOOD, "op": torch.tensor([1, 0, 0])}, "path_sampling", r"'op'.*torch.int64.*bool.*float"),
    "2-D": ({**GOOD, "op": onehot(1, 3)[None]}, "path_sampling", r"'op'.*shape \(1, 3\).*1-D"),
    "missing": ({k: v for k, v in GOOD.items() if k != "op"}, "path_sampling", r"no value for 'op'"),
    "missing in a weighting": ({**{k: v for k, v in GOOD.items() if k != "ks"}, "op": torch.full((3,), 1 / 3)},
                               "differentiable", r"'ks'.*every decision"),
    "not a dict": (["op"], "path_sampling", r"sample_search.*dict.*list"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_masks_are_refused_with_one_error_naming_the_label_and_what_is_allowed(case):
    masks, family, message = BAD[case]
    sampler = Fixed(MixedSpace(), family=family, search=masks)
    before = sampler.arch
    with pytest.raises((ValueError, TypeError), match=message):
        sampler.reset()
    assert sampler.arch == before  # nothing was applied


def test_float_masks_where_the_engine_has_no_weighting_are_refused_naming_why():
    sampler = Fixed(CellSpace(), family="differentiable")
    masks = sampler.arch_to_masks(supernet.sample(CellSpace(), seed=0))
    label = next(iter(masks))
    sampler.search = {**masks, label: masks[label].float() / 2}
    with pytest.raises(ValueError, match=rf"'{label}'.*Bool masks only.*DifferentiableCell"):
        sampler.reset()
    sampler = Fixed(InputsSpace(2), family="differentiable", search={"pick": torch.tensor([0.5, 0.5, 0.0])})
    with pytest.raises(ValueError, match=r"'pick'.*Bool masks only.*n_chosen=2"):
        sampler.reset()


def test_the_sampler_refuses_a_family_it_does_not_know_and_a_base_class_without_sample_search():
    with pytest.raises(ValueError, match="'gates'.*path_sampling.*differentiable"):
        Fixed(MixedSpace(), family="gates")
    with pytest.raises(NotImplementedError, match="sample_search"):
        Sampler(MixedSpace()).reset()


def test_arch_is_none_while_a_differentiable_model_mixes_by_its_own_weights():
    sampler = Fixed(MixedSpace(), family="differentiable")
    assert sampler.arch is None  # converted, not reset: every candidate runs, weighted by alpha
    sampler.search = sampler.arch_to_masks({"ks": 3, "op": "conv", "pick": [0], "depth": 2})
    sampler.reset()
    assert sampler.arch == {"ks": 3, "op": "conv", "pick": [0], "depth": 2}


def test_masks_to_arch_refuses_a_bad_mask_naming_the_label():
    sampler = Fixed(MixedSpace())
    with pytest.raises(ValueError, match=r"'op'.*0 True.*exactly one"):
        sampler.masks_to_arch({**GOOD, "op": torch.zeros(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"'op'.*float mask.*one architecture"):
        Fixed(MixedSpace(), family="differentiable").masks_to_arch({**GOOD, "op": torch.tensor([0.2, 0.7, 0.1])})


def test_float_masks_of_a_unit_with_two_value_choices_weight_each_combination_by_the_product():
    class TwoChoices(nn.Module):
        def __init__(self):
            super().__init__()
            width, ks = nn.ValueChoice([2, 4], label="width"), nn.ValueChoice([1, 3], label="ks")
            self.conv = nn.Conv2d(3, width, ks, padding=(ks - 1) // 2)

        def forward(self, x):
            return self.conv(x)

    weights = {"width": torch.tensor([0.3, 0.7]), "ks": torch.tensor([0.6, 0.4])}
    sampler = Fixed(TwoChoices(), family="differentiable", search=weights)
    sampler.reset()
    by_hand = torch.zeros(2, 4, 6, 6)
    for i, width in enumerate([2, 4]):
        for j, ks in enumerate([1, 3]):  # narrower outputs are zero-padded to the widest
            by_hand[:, :width] += weights["width"][i] * weights["ks"][j] * _frozen_output(
                sampler, {"width": width, "ks": ks})
    torch.testing.assert_close(sampler.model(X), by_hand)
