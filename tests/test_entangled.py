"""Weight-entangled basic units: weight mixing in the differentiable family, input widths, grouped
convolutions, and basic units computed per value combination (issue 16 §1 items 3, 5, 6; issue 17 item 1)."""

from __future__ import annotations

import collections
import itertools

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch.overrides import TorchFunctionMode

import supernet
import supernet.nn as nn
from supernet.oneshot import convert

FAMILIES = ("path_sampling", "differentiable", "binary_gate")


class _Calls(TorchFunctionMode):
    """Counts calls of torch.nn.functional layer functions (conv2d, linear, batch_norm, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.count: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count[getattr(func, "__name__", str(func))] += 1
        return func(*args, **(kwargs or {}))


def _pad_to(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    pad = []
    for have, want in zip(reversed(t.shape), reversed(shape)):
        pad += [0, want - have]
    return F.pad(t, pad)


def _mixture(state, labels, outputs, valid=lambda v: True):
    """The engine's differentiable semantics, computed the old way: every combination of the labels'
    values on its own, outputs zero-padded to the largest and summed with the product of the labels'
    weights (renormalised over the valid combinations)."""
    options = [state.space.choices[label].options for label in labels]
    terms, total = [], 0.0
    for index in itertools.product(*(range(len(o)) for o in options)):
        values = {label: options[n][i] for n, (label, i) in enumerate(zip(labels, index))}
        if not valid(values):
            continue
        coefficient = 1.0
        for label, i in zip(labels, index):
            coefficient = coefficient * state.weights(label)[i]
        terms.append((coefficient, outputs(values)))
        total = total + coefficient
    shape = tuple(max(sizes) for sizes in zip(*(o.shape for _, o in terms)))
    return sum(c / total * _pad_to(o, shape) for c, o in terms)


def _grads(tensors):
    return [t.grad.clone() for t in tensors]


def _check_equal_with_gradients(net, state, x, reference):
    """``net(x)`` equals ``reference()`` (built from the same parameters), and so do the gradients of a
    random linear loss with respect to every weight and architecture parameter."""
    for p in state.alpha.values():
        p.data.normal_()  # away from the uniform start, so a wrong weighting shows
    params = [p for p in net.parameters()] + list(state.alpha.values())
    out = net(x)
    expected = reference()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    probe = torch.randn_like(out)
    grads = torch.autograd.grad((out * probe).sum(), params, allow_unused=True)
    expected_grads = torch.autograd.grad((expected * probe).sum(), params, allow_unused=True)
    for g, e in zip(grads, expected_grads):
        if e is None:
            assert g is None or g.abs().sum() == 0
        else:
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)


def _centre(weight: torch.Tensor, k: int) -> torch.Tensor:
    top = (weight.shape[-1] - k) // 2
    return weight[..., top:top + k, top:top + k]


CONV_CASES = {
    # name: (conv arguments as a function of the labels, labels' options, input channels)
    "channels_and_kernel": (lambda c: dict(in_channels=c["cin"], out_channels=c["cout"], kernel_size=c["k"],
                                           padding=(c["k"] - 1) // 2),
                            {"cin": [4, 8], "cout": [6, 12], "k": [1, 3, 5]}, 8),
    "dilated_kernel": (lambda c: dict(in_channels=8, out_channels=c["cout"], kernel_size=c["k"], padding=c["k"] - 1,
                                      dilation=2), {"cout": [4, 6], "k": [3, 5]}, 8),
    "stride": (lambda c: dict(in_channels=8, out_channels=c["cout"], kernel_size=3, padding=1, stride=c["s"]),
               {"cout": [4, 6], "s": [1, 2]}, 8),
    "kernel_without_padding": (lambda c: dict(in_channels=8, out_channels=4, kernel_size=c["k"]), {"k": [2, 3]}, 8),
    "depthwise": (lambda c: dict(in_channels=c["c"], out_channels=c["c"], kernel_size=c["k"],
                                 padding=(c["k"] - 1) // 2, groups=c["c"]), {"c": [4, 8], "k": [3, 5]}, 8),
}


def _conv_space(case: str) -> torch.nn.Module:
    arguments, options, _ = CONV_CASES[case]
    choices = {label: nn.ValueChoice(values, label=label) for label, values in options.items()}
    return nn.Conv2d(**arguments(choices), bias=True)


def _frozen_conv_output(conv, values, case, x):
    """The frozen conv of ``values``, computed on the supernet's own (sliced) parameters."""
    a = CONV_CASES[case][0](values)
    cin, cout, k = a["in_channels"], a["out_channels"], a["kernel_size"]
    groups = a.get("groups", 1)
    weight = _centre(conv.weight[:cout, : cin // groups], k)
    return F.conv2d(x[:, :cin], weight, conv.bias[:cout], a.get("stride", 1), a.get("padding", 0),
                    a.get("dilation", 1), groups)


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_differentiable_conv_is_one_call_with_mixed_weights_equal_to_the_per_combination_sum(case):
    torch.manual_seed(0)
    net, state = convert(_conv_space(case), "differentiable")
    x = torch.randn(2, CONV_CASES[case][2], 7, 7)
    labels = list(CONV_CASES[case][1])
    _check_equal_with_gradients(
        net, state, x, lambda: _mixture(state, labels, lambda v: _frozen_conv_output(net, v, case, x)))
    with _Calls() as calls:
        net(x)
    structures = 2 if case in ("stride", "kernel_without_padding") else 1  # the 2x2 kernel is not centred in 3x3
    assert calls.count["conv2d"] == structures


def test_differentiable_linear_is_one_call_with_mixed_weights_equal_to_the_per_combination_sum():
    torch.manual_seed(0)
    net, state = convert(nn.Linear(nn.ValueChoice([4, 8], label="i"), nn.ValueChoice([3, 6], label="o")),
                         "differentiable")
    x = torch.randn(5, 8)
    _check_equal_with_gradients(net, state, x, lambda: _mixture(
        state, ["i", "o"], lambda v: F.linear(x[:, : v["i"]], net.weight[: v["o"], : v["i"]], net.bias[: v["o"]])))
    with _Calls() as calls:
        net(x)
    assert calls.count["linear"] == 1


def test_differentiable_batchnorm_is_one_call_masked_equal_to_the_per_combination_sum_and_updates_once():
    torch.manual_seed(0)
    net, state = convert(nn.BatchNorm2d(nn.ValueChoice([4, 8], label="n")), "differentiable")
    net.weight.data.normal_()
    net.bias.data.normal_()
    x = torch.randn(3, 8, 5, 5) * 2 + 1
    _check_equal_with_gradients(net, state, x, lambda: _mixture(state, ["n"], lambda v: F.batch_norm(
        x[:, : v["n"]], None, None, net.weight[: v["n"]], net.bias[: v["n"]], True)))
    # one forward is one running-statistics update of every channel (as one BatchNorm call), not one per width
    net.reset_running_stats()
    with torch.no_grad(), _Calls() as calls:
        net(x)
    assert calls.count["batch_norm"] == 1
    torch.testing.assert_close(net.running_mean, 0.1 * x.mean((0, 2, 3)))
    assert int(net.num_batches_tracked) == 1


def test_differentiable_layernorm_is_exact_with_one_call_per_width():
    torch.manual_seed(0)
    net, state = convert(nn.LayerNorm(nn.ValueChoice([4, 6, 8], label="n")), "differentiable")
    net.weight.data.normal_()
    x = torch.randn(3, 2, 8)
    _check_equal_with_gradients(net, state, x, lambda: _mixture(state, ["n"], lambda v: F.layer_norm(
        x[..., : v["n"]], (v["n"],), net.weight[: v["n"]], net.bias[: v["n"]])))


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        width = nn.ValueChoice([4, 8], label="width")
        kernel = nn.ValueChoice([3, 5], label="kernel")
        self.conv = nn.Conv2d(3, width, kernel, padding=(kernel - 1) // 2)
        self.bn = nn.BatchNorm2d(width)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.fc = nn.Linear(width, 5)

    def forward(self, x):
        return self.fc(self.dw(self.bn(self.conv(x)).relu()).mean((2, 3)))


def test_weight_mixing_with_one_hot_weights_equals_path_sampling():
    torch.manual_seed(0)
    sampling, sampling_state = convert(_Block(), "path_sampling")
    mixing, mixing_state = convert(_Block(), "differentiable")
    mixing.load_state_dict(sampling.state_dict())
    x = torch.randn(2, 3, 6, 6)
    for arch in ({"width": 4, "kernel": 3}, {"width": 8, "kernel": 5}, {"width": 4, "kernel": 5}):
        sampling_state.set_arch(arch)
        onehot = {label: torch.tensor([float(v == arch[label]) for v in sampling_state.space.choices[label].options])
                  for label in arch}
        mixing_state.weights = lambda label, onehot=onehot: onehot[label]  # exact one-hot, through the mixing code
        torch.testing.assert_close(mixing(x), sampling(x))


# -- wrong input width is an error (issue 16 §1 item 5) ------------------------------------------------------
def _width_units():
    c = nn.ValueChoice([4, 8], label="c")
    return {
        "conv2d": (nn.Conv2d(c, 3, 3, padding=1), lambda w: (torch.randn(2, w, 5, 5),)),
        "linear": (nn.Linear(c, 3), lambda w: (torch.randn(2, w),)),
        "batchnorm2d": (nn.BatchNorm2d(c), lambda w: (torch.randn(2, w, 5, 5),)),
        "layernorm": (nn.LayerNorm(c), lambda w: (torch.randn(2, w),)),
        "multihead_attention": (nn.MultiheadAttention(c, 2, batch_first=True),
                                lambda w: (torch.randn(2, 3, w),) * 3),
    }


@pytest.mark.parametrize("family", FAMILIES + ("differentiable_pinned",))
@pytest.mark.parametrize("unit", ["conv2d", "linear", "batchnorm2d", "layernorm", "multihead_attention"])
def test_an_entangled_unit_fed_the_wrong_input_width_raises(unit, family):
    module, inputs = _width_units()[unit]
    net, state = convert(module, family.replace("_pinned", ""))
    state.set_arch({"c": 4})
    if family == "differentiable_pinned":
        state.pin({"c": 4})
    # the width it expects runs: the chosen value, or in a mixture the widest (narrower outputs are zero-padded)
    right = 8 if family == "differentiable" else 4
    net(*inputs(right))
    with pytest.raises(ValueError, match=rf"width 6 .*expects {right}"):
        net(*inputs(6))


# -- depthwise-style grouped conv (issue 16 §1 item 6) --------------------------------------------------------
class _Depthwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c = nn.ValueChoice([4, 8], label="c")
        self.expand = nn.Conv2d(3, c, 1)
        self.dw = nn.Conv2d(c, nn.ValueChoice([8, 12], label="o"), 3, padding=1, groups=c)

    def forward(self, x):
        return self.dw(self.expand(x))


def _valid(v):  # groups (= c) must divide the output channels: c=8, o=12 is no convolution
    return v["o"] % v["c"] == 0


def test_depthwise_conv_with_groups_tied_to_in_channels_mixes_only_valid_combinations():
    torch.manual_seed(0)
    space = _Depthwise()
    net, state = convert(space, "differentiable")
    x = torch.randn(2, 3, 5, 5)
    for p in state.alpha.values():
        p.data.normal_()
    with torch.no_grad():
        expanded = net.expand(x)  # the mixture of widths 4 and 8, zero-padded to 8

        def frozen(v):
            conv = supernet.freeze(space, v, inherit_weights=True).dw  # plain torch Conv2d(c, o, groups=c)
            assert isinstance(conv, torch.nn.Conv2d) and conv.groups == v["c"]
            return conv(expanded[:, : v["c"]])

        torch.testing.assert_close(net(x), _mixture(state, ["c", "o"], frozen, _valid))
    for arch in ({"c": 4, "o": 8}, {"c": 4, "o": 12}, {"c": 8, "o": 8}):  # one-hot: the frozen network
        state.pin(arch)
        torch.testing.assert_close(net(x), supernet.freeze(space, arch, inherit_weights=True)(x))
    state.pin(None)


def test_path_sampling_an_invalid_grouped_conv_combination_raises_naming_it():
    net, state = convert(_Depthwise(), "path_sampling")
    state.set_arch({"c": 8, "o": 12})
    with pytest.raises(ValueError, match="groups=8 .*out_channels=12"):
        net(torch.randn(2, 3, 5, 5))


# -- basic units without an entangled form (issue 16 §1 item 3) -----------------------------------------------
class _Conv1dSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c = nn.ValueChoice([4, 8], label="c")
        self.first = nn.Conv1d(3, c, 1)
        self.second = nn.Conv1d(c, nn.ValueChoice([2, 5], label="o"), 3, padding=1)

    def forward(self, x):
        return self.second(self.first(x))


@nn.basic_unit
class _Bottleneck(torch.nn.Module):
    """A user's unit: its choice (the hidden width) does not change the input it takes."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.down, self.up = torch.nn.Linear(features, hidden), torch.nn.Linear(hidden, features)

    def forward(self, x):
        return self.up(self.down(x).relu())


def _combination(unit, state, values):
    options = [state.space.choices[leaf.label].options for leaf in unit.leaves()]
    index = list(itertools.product(*options)).index(tuple(values[leaf.label] for leaf in unit.leaves()))
    return unit.combinations[index]


def test_conv1d_with_channel_choices_gives_each_combination_its_input_width():
    torch.manual_seed(0)
    net, state = convert(_Conv1dSpace(), "differentiable")
    x = torch.randn(2, 3, 6)
    with torch.no_grad():
        first = net.first(x)
        reference = _mixture(state, ["c", "o"], lambda v: _combination(net.second, state, v)(first[:, : v["c"]]))
        torch.testing.assert_close(net(x), reference)


def test_multihead_attention_with_kdim_vdim_choices_and_batch_first_gives_each_combination_its_inputs():
    torch.manual_seed(0)
    unit = nn.MultiheadAttention(8, 2, kdim=nn.ValueChoice([4, 6], label="k"), vdim=nn.ValueChoice([3, 5], label="v"),
                                 batch_first=True)
    net, state = convert(unit, "differentiable")
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 5)
    with torch.no_grad():
        reference = _mixture(state, ["k", "v"], lambda c: _combination(net, state, c)(
            q, k[..., : c["k"]], v[..., : c["v"]])[0])
        torch.testing.assert_close(net(q, k, v)[0], reference)


@pytest.mark.parametrize("space", ["conv1d", "attention", "user_unit"])
def test_units_without_an_entangled_form_train_in_the_binary_gate_family(space):
    torch.manual_seed(0)
    if space == "conv1d":
        module, inputs = _Conv1dSpace(), lambda arch: (torch.randn(2, 3, 6),)
    elif space == "attention":  # the key comes as wide as the active architecture's kdim, as from a layer upstream
        module = nn.MultiheadAttention(8, 2, kdim=nn.ValueChoice([4, 6], label="k"), batch_first=True)
        inputs = lambda arch: (torch.randn(2, 3, 8), torch.randn(2, 4, arch["k"]), torch.randn(2, 4, 8))  # noqa: E731
    else:
        module, inputs = _Bottleneck(5, nn.ValueChoice([2, 3, 4], label="h")), lambda arch: (torch.randn(2, 5),)
    net, state = convert(module, "binary_gate")
    state.arch_gradients = True
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        state.sample_binary_gates(generator=generator)
        out = net(*inputs(state.arch))
        (out[0] if isinstance(out, tuple) else out).square().sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in state.alpha.values())


def test_a_user_basic_unit_mixes_its_combinations_in_the_differentiable_family():
    torch.manual_seed(0)
    net, state = convert(_Bottleneck(5, nn.ValueChoice([2, 3], label="h")), "differentiable")
    x = torch.randn(4, 5)
    _check_equal_with_gradients(net, state, x, lambda: _mixture(
        state, ["h"], lambda v: _combination(net, state, v)(x)))


@nn.basic_unit
class _Projection(torch.nn.Module):
    """A user's unit whose choice changes the input it takes: the engine cannot know that."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(features, 2)

    def forward(self, x):
        return self.fc(x)


def test_a_user_unit_whose_choice_changes_its_input_width_fails_in_a_mixture_with_an_error_saying_so():
    net, _ = convert(_Projection(nn.ValueChoice([3, 5], label="f")), "differentiable")
    with pytest.raises(RuntimeError, match="_Projection at .*choices must not change the input it takes"):
        net(torch.randn(2, 5))
