"""Models pickle: ``torch.save(model)``, ``pickle`` and ``copy.deepcopy`` work for every hub space, every frozen
network, every published model and every converted supernet, and the copy computes what the original computes."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import hub
import supernet
from hub.searched import _REGISTRY
from supernet.oneshot import convert
from supernet.primitives.value_choice import ValueChoice
from tests.test_hub import IMAGENET_CELL_NETWORKS, SMALL

X = torch.randn(2, 3, 32, 32)


def _torch_save(model: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def _pickle(model: torch.nn.Module) -> torch.nn.Module:
    return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


ROUND_TRIPS: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
    "torch.save": _torch_save, "pickle": _pickle, "deepcopy": copy.deepcopy}


def _assert_copies_compute_the_same(model: torch.nn.Module, x: torch.Tensor,
                                    forward: Callable[[torch.nn.Module], torch.Tensor] | None = None) -> None:
    """Each round trip gives a module of the same class and state whose eval-mode output equals the original's
    exactly (the same float operations on the same weights)."""
    run = forward or (lambda m: m(x))
    model.eval()
    with torch.no_grad():
        expected = run(model)
    for how, round_trip in ROUND_TRIPS.items():
        loaded = round_trip(model)
        assert type(loaded) is type(model), how
        assert loaded.state_dict().keys() == model.state_dict().keys(), how
        loaded.eval()
        with torch.no_grad():
            assert torch.equal(run(loaded), expected), f"{how}: the loaded copy computes something else"


def test_the_spaces_and_published_models_checked_here_cover_every_class_the_hub_exports():
    exported = {getattr(hub, n) for n in hub.__all__ if isinstance(getattr(hub, n), type)}
    built = {type(build()) for build in SMALL.values()}
    published = {type(hub.load_searched_model(n)) for n in ("nasnet-a", "enas")}  # the two own networks
    missing = {c.__name__ for c in exported if not any(issubclass(b, c) for b in built | published)}
    assert not missing, f"no pickling check builds {sorted(missing)}"


@pytest.mark.parametrize("name", list(SMALL))
def test_every_hub_space_pickles_and_computes_the_same(name):
    _assert_copies_compute_the_same(SMALL[name](), X)


@pytest.mark.parametrize("name", list(SMALL))
def test_frozen_networks_pickle_and_compute_the_same(name):
    space = SMALL[name]()
    _assert_copies_compute_the_same(supernet.freeze(space, supernet.sample(space, seed=0)), X)


@pytest.mark.parametrize("name", sorted(_REGISTRY))
def test_every_published_model_pickles_and_computes_the_same(name):
    net = hub.load_searched_model(name)
    cifar = issubclass(_REGISTRY[name].space, hub.NDS) and name not in IMAGENET_CELL_NETWORKS
    size = 32 if cifar else 224
    _assert_copies_compute_the_same(net, torch.randn(1, 3, size, size))


@pytest.mark.parametrize("family", ["path_sampling", "differentiable", "binary_gate"])
@pytest.mark.parametrize("name", list(SMALL))
def test_converted_supernets_deepcopy_and_pickle(name, family):
    space = SMALL[name]()
    net, state = convert(space, family)
    state.set_arch(supernet.sample(space, seed=0))
    _assert_copies_compute_the_same(net, X)


def test_value_choice_expressions_pickle_and_evaluate_the_same():
    a, b = ValueChoice([2, 3], label="a"), ValueChoice([4, 7], label="b")
    expressions = [a, ValueChoice.max(a, b), ValueChoice.min(a, b), ValueChoice.condition(a > 2, b, a * 10),
                   round(a * 1.5) + b // 2, ValueChoice.to_int(b / 2)]
    for expression in expressions:
        loaded = pickle.loads(pickle.dumps(expression))
        assert repr(loaded) == repr(expression)
        # every setting of the two leaves, against the original expression
        assert [loaded.evaluate_with({"a": x, "b": y}) for x in (2, 3) for y in (4, 7)] == [
            expression.evaluate_with({"a": x, "b": y}) for x in (2, 3) for y in (4, 7)]
    # by hand: max(3, 4) = 4, min(3, 7) = 3, (3 > 2 -> b) = 7, round(4.5) + 3 = 4 + 3 = 7, int(7 / 2) = 3
    values = {"a": 3, "b": 7}
    assert [pickle.loads(pickle.dumps(e)).evaluate_with({**values, "b": 4} if i == 1 else values)
            for i, e in enumerate(expressions)] == [3, 4, 3, 7, 7, 3]


FRESH_PROCESS_CHECK = """
import sys, torch
saved = torch.load(sys.argv[1], weights_only=False)
for model in saved["models"]:
    model.eval()
    with torch.no_grad():
        output = model(saved["input"])
    assert torch.equal(output, saved["outputs"].pop(0)), type(model).__name__
print("same outputs")
"""


def test_saved_supernets_and_networks_load_in_a_fresh_process_and_compute_the_same(tmp_path):
    """In a new interpreter nothing was made yet: the basic units, a decorated basic unit (AutoFormer's
    ``Tokens``) and the one-shot family classes must be rebuilt while loading."""
    models = []
    for name, family in [("autoformer", "differentiable"), ("mobilenetv3", "path_sampling"),
                         ("nasbench101", "binary_gate")]:
        space = SMALL[name]()
        arch = supernet.sample(space, seed=0)
        models += [copy.deepcopy(space), supernet.freeze(space, arch)]
        net, state = convert(space, family)
        state.set_arch(arch)
        models.append(net)
    with torch.no_grad():
        outputs = [m.eval()(X) for m in models]
    path = tmp_path / "models.pt"
    torch.save({"models": models, "input": X, "outputs": outputs}, path)
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS_CHECK, str(path)], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "same outputs"
