"""Language cases users of the reference toolkit rely on (issue 16, section 1, items 1, 2, 4, 7 and 8).

Tuple-valued candidates (kernel sizes, LayerNorm shapes) through JSON, freezing and every one-shot
family; ValueChoice algebra (``~`` is bitwise, ``evaluate`` checks its values, list-valued choices
stay usable when fixed); candidates returning tuples that hold None, in every family; frozen
AutoActivation labels, SearchSpace as a read-only Mapping with the table as its repr, and short
reprs of long ValueChoice expressions; the NDS spaces with a searchable num_cells from 4 up.
"""

from __future__ import annotations

import json
import math
import pickle
import signal
from collections.abc import Mapping, MutableMapping
from typing import Any

import pytest
import torch

import supernet
import supernet.nn as nn
from supernet.primitives.base import Choice


@pytest.fixture
def time_limit():
    """Fail (instead of hanging) if the test body runs for more than 10 s."""
    def _raise(*_):
        raise TimeoutError("took more than 10 s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# -- item 2: ValueChoice algebra ---------------------------------------------------------------------
def test_invert_is_bitwise_invert_like_on_the_chosen_value():
    a = nn.ValueChoice([1, 2, 4], label="a")
    # the reference toolkit's __invert__ is operator.invert: ~x == -x - 1
    assert (~a).evaluate([2]) == ~2 == -3
    assert (~a).all_options() == [-2, -3, -5]
    assert (~(a & 6)).evaluate([4]) == ~(4 & 6) == -5
    with supernet.fixed_arch({"a": 2}):
        fixed = nn.ValueChoice([1, 2, 4], label="a")
    assert ~fixed == (~a).evaluate([2])


def test_evaluate_rejects_a_value_that_is_not_a_candidate():
    a, b = nn.ValueChoice([1, 2, 4], label="a"), nn.ValueChoice([16, 32], label="b")
    with pytest.raises(ValueError, match=r"invalid value 3 for ValueChoice 'a'; allowed: \[1, 2, 4\]"):
        a.evaluate([3])
    with pytest.raises(ValueError, match=r"invalid value 8 for ValueChoice 'b'; allowed: \[16, 32\]"):
        (a * b + 1).evaluate([2, 8])
    with pytest.raises(ValueError, match=r"invalid value 3 for ValueChoice 'a'"):
        (a + 1).evaluate_with({"a": 3})
    # candidates still evaluate, numbers of another type but equal value too (12.0 read from JSON)
    assert (a * b + 1).evaluate([2, 32]) == 65
    assert a.evaluate([4.0]) == 4 and type(a.evaluate([4.0])) is int  # the candidate as declared


def test_a_fixed_list_valued_choice_is_the_value_itself_and_stays_callable():
    with supernet.fixed_arch({"k": [8, 5]}):
        k = nn.ValueChoice([[6, 3], [8, 5]], label="k")
    # the README: inside fixed_arch the choice is the chosen value, callable like self.rate()
    assert k == [8, 5] and k() == [8, 5] and type(k()) is list
    assert k[0] == 8 and list(k) == [8, 5] and len(k) == 2
    assert nn.ValueChoice.max(k) == 8 and nn.ValueChoice.min(k) == 5


def test_a_list_valued_choice_indexes_lazily_and_refuses_iteration(time_limit):
    k = nn.ValueChoice([[6, 3], [8, 5]], label="k")
    assert k[0].evaluate([[8, 5]]) == 8 and k[1].all_options() == [3, 5]
    # the same space code runs in both modes: max/min of a list-valued choice are lazy
    assert nn.ValueChoice.max(k).all_options() == [6, 8]
    assert nn.ValueChoice.min(k).evaluate([[8, 5]]) == 5
    with pytest.raises(TypeError, match=r"index it \(x\[0\] is lazy\)"):
        iter(k)


def test_a_space_using_a_list_valued_choice_builds_searched_and_fixed():
    class Space(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = nn.ValueChoice([[1, 3], [3, 1]], label="k")
            self.conv = nn.Conv2d(2, 4, kernel_size=self.k, padding=(self.k[0] // 2, self.k[1] // 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    assert supernet.search_space(Space())["k"].options == [[1, 3], [3, 1]]
    net = supernet.freeze(Space(), {"k": [3, 1]})
    assert net.conv.kernel_size == (3, 1) and net.conv.padding == (1, 0)
    assert net(torch.zeros(1, 2, 5, 5)).shape == (1, 4, 5, 5)


# -- item 7: AutoActivation, SearchSpace as a Mapping, short reprs ------------------------------------
class _Act(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.AutoActivation(unit_num=1, label="act")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


_ACT_ARCH = {"act/unary_0": "relu", "act/unary_1": "identity", "act/binary_0": "add"}


def test_a_frozen_auto_activation_keeps_its_label():
    net = supernet.freeze(_Act(), _ACT_ARCH)  # rebuilt inside fixed_arch
    assert net.act.label == "act"
    converted = nn.AutoActivation(unit_num=1, label="act2").freeze(
        {k.replace("act", "act2"): v for k, v in _ACT_ARCH.items()})  # frozen choice by choice
    assert converted.label == "act2" and "label='act2'" in repr(converted)
    # relu(x) + x
    x = torch.tensor([-1.0, 2.0])
    assert torch.equal(net(x), torch.tensor([-1.0, 4.0]))


def test_search_space_is_a_read_only_mapping_from_label_to_choice():
    ss = supernet.search_space(_Act())
    assert isinstance(ss, Mapping) and not isinstance(ss, MutableMapping)
    labels = ["act/unary_0", "act/unary_1", "act/binary_0"]
    assert list(ss.keys()) == labels == list(ss) == ss.labels and len(ss) == 3
    assert all(isinstance(c, Choice) for c in ss.values())
    assert [(label, c.label) for label, c in ss.items()] == [(label, label) for label in labels]
    assert "act/binary_0" in ss and "nope" not in ss and ss.get("nope") is None
    assert dict(ss) == ss.choices and ss["act/binary_0"].options[0] == "add"
    with pytest.raises(TypeError):
        ss["act/binary_0"] = ss["act/unary_0"]  # type: ignore[index]
    # what it had stays: size (23 * 23 * 10 = 5290), default arch, validation, tuner format
    assert ss.size == 23 * 23 * 10 and ss.default_arch()["act/binary_0"] == "add"
    assert ss.validate(_ACT_ARCH) == _ACT_ARCH and set(ss.to_json()) == set(labels)


def test_search_space_repr_is_its_table():
    ss = supernet.search_space(_Act())
    assert repr(ss) == str(ss)
    lines = repr(ss).splitlines()
    assert lines[0].split() == ["label", "kind", "options", "prior"]
    assert lines[-1] == "3 decisions, 5,290 architectures"


def test_a_long_expression_prints_as_one_short_line_naming_its_labels():
    a, b, c = (nn.ValueChoice([1, 2], label=name) for name in ("a", "b", "cin"))
    short = (a + b) * 2
    assert repr(short) == "ValueChoiceX((a + b) * 2)"
    deep = (a + b) * c // 2
    for _ in range(6):
        deep = (deep + a) * b - c
    text = repr(deep)
    assert "\n" not in text and len(text) <= 120, text
    assert "..." in text and text.endswith("labels=['a', 'b', 'cin'])"), text
    assert text.startswith("ValueChoiceX(")
    # a basic unit's repr shows the short form too
    conv = nn.Conv2d(3, round(a * b * 1.5) + c // 2, 3)
    assert "out_channels=ValueChoiceX(round(a * b * 1.5) + cin // 2)" in repr(conv)


def test_a_short_expression_reads_as_python_with_labels_for_leaves():
    a, b, c = (nn.ValueChoice([1, 2, 3], label=name) for name in ("a", "b", "c"))
    expressions = [a - (b - c), (a - b) - c, a ** b ** c, (a ** b) ** c, a * (b + c) - c % a, -(a + b) // c,
                   nn.ValueChoice.max(a + 1, b * c), nn.ValueChoice.condition(a > b, c, a | b), ~a ^ b & c]
    for expression in expressions:
        text = repr(expression)
        assert text.startswith("ValueChoiceX(") and text.endswith(")")
        for values in [(1, 2, 3), (3, 1, 2), (2, 3, 1)]:  # the text, run as Python, gives the same value
            scope = {"max": max, **dict(zip("abc", values))}
            assert eval(text[len("ValueChoiceX("):-1], scope) == expression.evaluate(list(values)), text
    assert [repr(e) for e in expressions[:3]] == [
        "ValueChoiceX(a - (b - c))", "ValueChoiceX(a - b - c)", "ValueChoiceX(a ** (b ** c))"]


# -- item 1: tuple-valued candidates ------------------------------------------------------------------
class _TupleSpace(nn.Module):
    """A (kh, kw) kernel size, its lazily indexed padding, and a LayerNorm shape as a 1-tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.ValueChoice([(3, 3), (3, 5), (5, 3)], label="k")
        self.conv = nn.Conv2d(3, 8, kernel_size=self.k, padding=(self.k[0] // 2, self.k[1] // 2))
        self.shape = nn.ValueChoice([(4,), (8,)], label="n")
        self.linear = nn.Linear(8, self.shape[0])
        self.norm = nn.LayerNorm(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.conv(x).mean((2, 3))))


_TUPLE_ARCHS = [{"k": (3, 3), "n": (4,)}, {"k": (3, 5), "n": (8,)}, {"k": (5, 3), "n": (4,)}]


def test_tuple_valued_candidates_sample_validate_and_come_back_from_json_as_declared():
    ss = supernet.search_space(_TupleSpace())
    assert ss["k"].options == [(3, 3), (3, 5), (5, 3)] and ss.size == 6
    assert ss.validate(ss.default_arch()) == {"k": (3, 3), "n": (4,)}
    for seed in range(5):
        arch = supernet.sample(ss, seed=seed)
        assert ss.validate(arch) == arch and type(arch["k"]) is tuple
        read_back = json.loads(json.dumps(arch))  # arch.json: tuples become lists
        assert read_back["k"] == list(arch["k"])
        validated = ss.validate(read_back)  # a list stands for the tuple option, given back as declared
        assert validated == arch and type(validated["k"]) is tuple and type(validated["n"]) is tuple
    with pytest.raises(ValueError, match=r"invalid value \[5, 5\] for 'k'; allowed: \[\(3, 3\), \(3, 5\), \(5, 3\)\]"):
        ss.validate({"k": [5, 5], "n": [4]})
    # the tuner format names the values as JSON lists; its _value reads back too
    assert json.loads(ss.dumps())["k"] == {"_type": "choice", "_value": [[3, 3], [3, 5], [5, 3]]}
    assert ss.validate({"k": {"_value": [3, 5], "_idx": 1}, "n": {"_value": [8], "_idx": 1}}) == _TUPLE_ARCHS[1]


def test_tuple_valued_candidates_build_fixed_index_lazily_and_evaluate_lists():
    k = nn.ValueChoice([(6, 3), (8, 5)], label="k")
    assert k[0].all_options() == [6, 8] and k[1].evaluate([(8, 5)]) == 5
    assert k.evaluate([[8, 5]]) == (8, 5) and type(k.evaluate([[8, 5]])) is tuple  # a list read from JSON
    assert (k[0] * k[1]).evaluate_with({"k": [6, 3]}) == 18
    for given in ([8, 5], (8, 5)):
        with supernet.fixed_arch({"k": given}):
            fixed = nn.ValueChoice([(6, 3), (8, 5)], label="k")
        assert fixed == (8, 5) and type(fixed()) is tuple and fixed[0] == 8
    with supernet.fixed_arch({"k": [8, 3]}), pytest.raises(ValueError, match=r"invalid value \[8, 3\] for 'k'"):
        nn.ValueChoice([(6, 3), (8, 5)], label="k")
    # a list and a tuple that JSON cannot tell apart are one candidate twice
    with pytest.raises(ValueError, match="appears twice"):
        nn.ValueChoice([(6, 3), [6, 3]], label="twice")


@pytest.mark.parametrize("arch", _TUPLE_ARCHS)
def test_tuple_kernel_size_and_layer_norm_shape_freeze_to_the_torch_modules(arch):
    net = supernet.freeze(_TupleSpace(), json.loads(json.dumps(arch)))
    kh, kw = arch["k"]
    assert type(net.conv) is torch.nn.Conv2d and net.conv.kernel_size == (kh, kw)
    assert net.conv.padding == (kh // 2, kw // 2) and net.conv.weight.shape == (8, 3, kh, kw)
    assert type(net.norm) is torch.nn.LayerNorm and net.norm.normalized_shape == arch["n"]
    assert net.linear.out_features == arch["n"][0]
    assert net(torch.zeros(2, 3, 7, 7)).shape == (2, arch["n"][0])


class _ParameterSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, nn.ModelParameterChoice([(3, 3), (5, 1)], label="k"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_model_parameter_choice_of_tuples_freezes_from_a_json_architecture():
    assert supernet.freeze(_ParameterSpace(), json.loads('{"k": [5, 1]}')).conv.kernel_size == (5, 1)


@pytest.mark.parametrize("family", ["path_sampling", "differentiable", "binary_gate"])
def test_tuple_valued_candidates_convert_into_every_family(family):
    """Each family's supernet, at each architecture (pinned for differentiable), computes what its
    weight-inheriting freeze computes; the default and exported architectures validate."""
    from supernet.oneshot import convert, export_arch

    torch.manual_seed(0)
    net, state = convert(_TupleSpace(), family)
    net.eval()
    x = torch.randn(2, 3, 7, 7)
    assert state.space.validate(state.arch) == {"k": (3, 3), "n": (4,)}
    for arch in _TUPLE_ARCHS:
        if family == "differentiable":
            state.pin(json.loads(json.dumps(arch)))
        else:
            state.set_arch(json.loads(json.dumps(arch)))
        assert state.arch == arch
        frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
        assert frozen.conv.weight.shape[2:] == arch["k"]
        torch.testing.assert_close(net(x), frozen(x))
    exported = export_arch(net, state)
    assert state.space.validate(exported) == exported and type(exported["k"]) is tuple



def test_a_differentiable_supernet_over_tuple_kernels_with_saturated_weights_computes_the_path_sampling_output():
    """Unpinned: every (kh, kw) runs on its slice of the (5, 5) weight and the outputs are mixed; with the
    weights saturated on one architecture the mixture is that architecture's output (zero-padded to 8)."""
    from supernet.oneshot import convert

    torch.manual_seed(0)
    sampling, sampling_state = convert(_TupleSpace(), "path_sampling")
    mixing, mixing_state = convert(_TupleSpace(), "differentiable")
    mixing.load_state_dict(sampling.state_dict())
    x = torch.randn(2, 3, 7, 7)
    for arch in _TUPLE_ARCHS:
        sampling_state.set_arch(arch)
        with torch.no_grad():
            for label in mixing_state.labels():
                mixing_state.alpha_of(label).fill_(-1e4)[mixing_state.alpha_values(label).index(arch[label])] = 0
        expected = sampling(x)
        mixed = mixing(x)
        torch.testing.assert_close(mixed[:, :expected.shape[1]], expected)
        assert not mixed[:, expected.shape[1]:].any()

# -- item 4: candidates returning tuples that contain None ------------------------------------------
class _Affine(torch.nn.Module):
    """``(scale * x + shift, None)``: an output and an absent extra (as attention returns its weights)."""

    def __init__(self, scale: float, shift: float = 0.0, extra: bool = False) -> None:
        super().__init__()
        self.scale, self.shift, self.extra = scale, shift, extra

    def forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x[0] if isinstance(x, tuple) else x  # a Repeat block gets the previous block's pair
        y = self.scale * x + self.shift
        return y, (y.detach() if self.extra else None)


class _Holder(torch.nn.Module):
    def __init__(self, choice: torch.nn.Module) -> None:
        super().__init__()
        self.choice = choice

    def forward(self, x: torch.Tensor) -> Any:
        return self.choice(x)


_CANDIDATES = [(2.0, 0.0), (1.0, 1.0), (-1.0, 0.5)]
_ALPHA = [0.1, 0.5, -0.3]
_X = torch.tensor([[1.0, -2.0, 3.0]])


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def _layer_choice(extra_in: int | None = None) -> _Holder:
    return _Holder(nn.LayerChoice([_Affine(s, b, extra=i == extra_in) for i, (s, b) in enumerate(_CANDIDATES)],
                                  label="op"))


def _repeat() -> _Holder:
    return _Holder(nn.Repeat(lambda i: _Affine(2.0, 1.0), (1, 3), label="depth"))


def test_a_differentiable_layer_choice_mixes_tuples_element_by_element_and_keeps_none():
    from supernet.oneshot import convert

    net, state = convert(_layer_choice(), "differentiable")
    with torch.no_grad():
        state.alpha_of("op").copy_(torch.tensor(_ALPHA))
    out, extra = net(_X)
    w = _softmax(_ALPHA)
    expected = sum(wi * (s * _X + b) for wi, (s, b) in zip(w, _CANDIDATES))
    torch.testing.assert_close(out, expected)
    assert extra is None
    out.sum().backward()  # d out / d alpha_i = w_i (y_i - out): the softmax's Jacobian
    grad = [wi * float((s * _X + b - expected).sum()) for wi, (s, b) in zip(w, _CANDIDATES)]
    torch.testing.assert_close(state.alpha_of("op").grad, torch.tensor(grad))


def test_a_differentiable_repeat_mixes_tuple_outputs_and_keeps_none():
    from supernet.oneshot import convert

    net, state = convert(_repeat(), "differentiable")
    with torch.no_grad():
        state.alpha_of("depth").copy_(torch.tensor(_ALPHA))
    out, extra = net(_X)
    depth_outputs = [2 * _X + 1, 4 * _X + 3, 8 * _X + 7]  # after 1, 2 and 3 blocks of 2x + 1
    torch.testing.assert_close(out, sum(w * y for w, y in zip(_softmax(_ALPHA), depth_outputs)))
    assert extra is None


def test_candidates_returning_none_in_different_places_is_a_clear_error_when_mixed():
    from supernet.oneshot import convert

    net, _ = convert(_layer_choice(extra_in=1), "differentiable")
    with pytest.raises(ValueError, match=r"'op'.*candidate '1'.*None.*the same places"):
        net(_X)


@pytest.mark.parametrize("build", [_layer_choice, _repeat], ids=["layer_choice", "repeat"])
def test_path_sampling_runs_the_chosen_candidate_returning_a_tuple_with_none(build):
    from supernet.oneshot import convert

    net, state = convert(build(), "path_sampling")
    label, value, expected = ("op", "1", _X + 1) if build is _layer_choice else ("depth", 2, 4 * _X + 3)
    state.set_arch({label: value})
    out, extra = net(_X)
    torch.testing.assert_close(out, expected)
    assert extra is None


@pytest.mark.parametrize("build", [_layer_choice, _repeat], ids=["layer_choice", "repeat"])
def test_binary_gates_on_candidates_returning_a_tuple_with_none_give_the_proxyless_gradient(build):
    """The active path's output, and alpha's gradient sum_j <dL/dy, y_j> p_j (delta_ij - p_i) over the
    two sampled paths (ProxylessNAS), with L = sum(y)."""
    from supernet.oneshot import convert

    net, state = convert(build(), "binary_gate")
    label = "op" if build is _layer_choice else "depth"
    outputs = {"0": 2 * _X, "1": _X + 1, "2": -_X + 0.5} if label == "op" else \
        {1: 2 * _X + 1, 2: 4 * _X + 3, 3: 8 * _X + 7}
    values = list(outputs)
    with torch.no_grad():
        state.alpha_of(label).copy_(torch.tensor(_ALPHA))
    state.arch_gradients = True
    state.sample_binary_gates(generator=torch.Generator().manual_seed(0))
    out, extra = net(_X)
    torch.testing.assert_close(out, outputs[state.arch[label]])
    assert extra is None
    out.sum().backward()
    picked = [values.index(v) for v in state.gate_paths[label]]
    p = _softmax([_ALPHA[i] for i in picked])
    dots = [float(outputs[values[i]].sum()) for i in picked]
    expected = [0.0] * 3
    for a, i in enumerate(picked):
        expected[i] = sum(dots[b] * p[b] * ((a == b) - p[a]) for b in range(len(picked)))
    torch.testing.assert_close(state.alpha_of(label).grad, torch.tensor(expected))


# -- item 8: the NDS spaces search num_cells down to 4 ------------------------------------------------
_NDS = {"nasnet": "NASNet", "enas": "ENAS", "amoebanet": "AmoebaNet", "pnas": "PNAS", "darts": "DARTS"}
_IMAGES = torch.randn(2, 3, 16, 16)
_SLOW = pytest.mark.slow


def _nds(name: str, num_cells: Any, **kwargs: Any) -> torch.nn.Module:
    import hub

    return getattr(hub, _NDS[name])(width=4, num_cells=num_cells, **kwargs)


def _check_frozen_depths(name: str, num_cells: tuple[int, ...], depths: tuple[int, ...]) -> None:
    """A frozen architecture is the network built with that fixed num_cells: the same tensors, and the same
    outputs with the same weights."""
    space = _nds(name, num_cells)
    assert supernet.search_space(space)["depth"].options == list(num_cells)
    for depth in depths:
        arch = {**supernet.sample(space, seed=depth), "depth": depth}
        frozen = supernet.freeze(space, json.loads(json.dumps(arch))).eval()
        fixed = supernet.freeze(_nds(name, depth), {k: v for k, v in arch.items() if k != "depth"}).eval()
        assert {k: v.shape for k, v in frozen.state_dict().items()} == \
            {k: v.shape for k, v in fixed.state_dict().items()}
        assert sum(len(stage) for stage in frozen.stages) == depth - 2  # the normal cells
        frozen.load_state_dict(fixed.state_dict())
        torch.testing.assert_close(frozen(_IMAGES), fixed(_IMAGES))


@pytest.mark.parametrize("name", [n if n == "darts" else pytest.param(n, marks=_SLOW) for n in _NDS])
def test_an_nds_space_with_a_searchable_num_cells_from_four_freezes_to_the_fixed_depth_network(name):
    _check_frozen_depths(name, (4, 5, 8), (4, 5, 8))
    assert _nds(name, (4, 5, 8))(_IMAGES).shape == (2, 10)  # the space runs as is, at its first depth (4)


@_SLOW
@pytest.mark.parametrize("name", list(_NDS))
def test_an_nds_space_with_the_reference_toolkits_num_cells_freezes_at_four_and_twenty(name):
    # NNI's NASNet, ENAS, AmoebaNet, PNAS and DARTS spaces default to num_cells=(4, 8, 12, 16, 20)
    _check_frozen_depths(name, (4, 8, 12, 16, 20), (4, 20))


@pytest.mark.parametrize("name", ["darts", pytest.param("nasnet", marks=_SLOW)])
def test_a_path_sampling_nds_supernet_with_num_cells_from_four_equals_its_weight_inheriting_freeze(name):
    from supernet.oneshot import convert

    # the search network's BatchNorms (affine=False), which freeze as they are
    net, state = convert(_nds(name, (4, 6), affine=False), "path_sampling")
    net.eval()
    for depth in (4, 6):  # 4: both reduction cells get the stage's own input; 6: a cell's output
        arch = {**supernet.sample(state.space, seed=depth), "depth": depth}
        state.set_arch(arch)
        frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
        torch.testing.assert_close(net(_IMAGES), frozen(_IMAGES), msg=f"depth {depth}")
    copied = pickle.loads(pickle.dumps(net))  # the supernet pickles, at the depth it was set to
    torch.testing.assert_close(copied(_IMAGES), net(_IMAGES))


def test_a_differentiable_nds_supernet_with_num_cells_from_four_pinned_computes_the_path_sampling_output():
    """Each depth's stage output is handed to the next reduction cell through that depth's preprocessing before
    the weighted sum, so the shapes agree; pinned to one depth it computes what path sampling computes."""
    from supernet.oneshot import convert

    sampling, sampling_state = convert(_nds("darts", (4, 6)), "path_sampling")
    mixing, mixing_state = convert(_nds("darts", (4, 6)), "differentiable")
    mixing.load_state_dict(sampling.state_dict())
    sampling.eval(), mixing.eval()
    for depth in (4, 6):
        arch = {**supernet.sample(sampling_state.space, seed=depth), "depth": depth}
        sampling_state.set_arch(arch)
        mixing_state.pin(arch)
        torch.testing.assert_close(mixing(_IMAGES), sampling(_IMAGES), msg=f"depth {depth}")
    mixing_state.pin(None)
    mixing.train()
    mixing(_IMAGES).sum().backward()  # soft weights: every depth runs, and the depth's weights learn
    assert mixing_state.alpha_of("depth").grad.abs().sum() > 0


def test_a_binary_gate_nds_supernet_with_num_cells_from_four_equals_its_freeze_and_gates_the_depth():
    from supernet.oneshot import convert

    net, state = convert(_nds("darts", (4, 6), affine=False), "binary_gate")
    net.eval()
    for depth in (4, 6):
        arch = {**supernet.sample(state.space, seed=depth), "depth": depth}
        state.set_arch(arch)
        frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
        torch.testing.assert_close(net(_IMAGES), frozen(_IMAGES), msg=f"depth {depth}")
    state.arch_gradients = True
    with torch.no_grad():
        state.alpha_of("depth").zero_()
    state.sample_binary_gates(generator=torch.Generator().manual_seed(0))
    net(_IMAGES).sum().backward()  # the other sampled depth's output, handed on, gives the gate gradient
    assert state.alpha_of("depth").grad.abs().sum() > 0


def test_a_searchable_num_cells_below_four_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"num_cells.*>= 4.*got \(3, 8\)"):
        _nds("darts", (3, 8))
    assert _nds("darts", 3)(_IMAGES).shape == (2, 10)  # a fixed 3 stays allowed


def test_an_nds_space_takes_num_cells_as_a_value_choice():
    from supernet.oneshot import convert

    space = _nds("darts", nn.ValueChoice([4, 6], label="cells"))
    ss = supernet.search_space(space)
    assert ss["cells"].options == [4, 6] and "depth" not in ss
    for cells in (4, 6):
        arch = {**supernet.sample(space, seed=0), "cells": cells}
        assert sum(len(stage) for stage in supernet.freeze(space, arch).stages) == cells - 2
    net, state = convert(space, "path_sampling")
    state.set_arch({**arch, "cells": 4})
    assert net(_IMAGES).shape == (2, 10)
    with pytest.raises(TypeError, match=r"num_cells must be an int, a list of ints or a ValueChoice.*cells \* 2"):
        _nds("darts", nn.ValueChoice([4, 6], label="cells") * 2)


def test_fixed_arch_reads_a_list_for_a_tuple_valued_model_parameter_choice_as_declared():
    """``fixed_arch`` with a JSON architecture (tuples read as lists), no space given: the ModelParameterChoice
    gives back the declared tuple, as a ValueChoice does."""
    with supernet.fixed_arch(json.loads('{"k": [5, 1]}')):
        assert _ParameterSpace().conv.kernel_size == (5, 1)
    with supernet.fixed_arch({"k": [5, 5]}), pytest.raises(ValueError, match=r"invalid value \[5, 5\] for 'k'"):
        _ParameterSpace()
