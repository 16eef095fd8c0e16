"""The hub: every space builds, samples, freezes and runs small; published networks are exact."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import torch
import torchvision

import hub
import supernet
from hub.searched import _REGISTRY
from supernet.oneshot import convert
from supernet.primitives.module import init_arguments
from tests.conftest import assert_plain

# every space at a configuration small enough for CPU tests (32x32 images, 10 classes)
SMALL = {
    "nasnet": lambda: hub.NASNet(width=4, num_cells=3),
    "enas": lambda: hub.ENAS(width=4, num_cells=3),
    "amoebanet": lambda: hub.AmoebaNet(width=(4, 6), num_cells=3),
    "pnas": lambda: hub.PNAS(width=4, num_cells=3),
    "darts": lambda: hub.DARTS(width=4, num_cells=3),
    "proxylessnas": lambda: hub.ProxylessNAS(num_labels=10, width_mult=0.25),
    "mobilenetv3": lambda: hub.MobileNetV3Space(num_labels=10, width_multipliers=(0.25, 0.5), depth_range=(1, 2),
                                                squeeze_excite=("optional",) * 6),
    "shufflenet": lambda: hub.ShuffleNetSpace(num_labels=10, channel_search=True),
    "autoformer": lambda: hub.AutoformerSpace(search_embed_dim=(32, 48), search_num_heads=(1, 2), search_depth=(2, 3),
                                              img_size=32, patch_size=8, num_classes=10, rpe=True),
    "nasbench201": lambda: hub.NasBench201(stem_out_channels=8, num_modules_per_stack=2),
    "nasbench101": lambda: hub.NasBench101(stem_out_channels=8, num_modules_per_stack=1),
}
X = torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", list(SMALL))
def test_space_runs_and_ten_sampled_architectures_freeze_and_run(name):
    space = SMALL[name]()
    assert space(X).shape == (2, 10)
    for seed in range(10):
        net = supernet.freeze(space, supernet.sample(space, seed=seed)).eval()
        assert_plain(net)
        assert net(X).shape == (2, 10)


def _search_form(space: torch.nn.Module) -> torch.nn.Module:
    """A cell space built with ``affine=False``, so that its fixed networks are the search network too; by
    default they are DARTS's evaluation network (no BatchNorm after pools), not what the supernet computes."""
    if not isinstance(space, hub.NDS):
        return space
    args, kwargs = init_arguments(space)
    return type(space)(*args, **{**kwargs, "affine": False})


def _check_inheriting_freeze(space: torch.nn.Module, family: str, count: int) -> None:
    space = _search_form(space)
    net, state = convert(copy.deepcopy(space), family)
    net.eval()
    for seed in range(count):
        arch = supernet.sample(space, seed=seed)
        state.set_arch(arch)
        frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
        torch.testing.assert_close(net(X), frozen(X), msg=f"{family} supernet != frozen net on {arch}")


@pytest.mark.parametrize("name", list(SMALL))
def test_path_sampling_supernet_equals_its_weight_inheriting_freeze_on_ten_architectures(name):
    _check_inheriting_freeze(SMALL[name](), "path_sampling", 10)


@pytest.mark.parametrize("name", list(SMALL))
def test_binary_gate_supernet_equals_its_weight_inheriting_freeze(name):
    _check_inheriting_freeze(SMALL[name](), "binary_gate", 3)


@pytest.mark.slow
def test_searchable_depth_and_width_of_a_cell_space_keep_the_invariant():
    _check_inheriting_freeze(hub.PNAS(width=(4, 6), num_cells=(8, 11)), "path_sampling", 10)


def _check_mixing_equals_sampling(space: torch.nn.Module, set_weights: Any) -> None:
    """On 3 sampled archs, the differentiable supernet with ``set_weights(state, arch)`` applied
    computes what the path-sampling supernet (same weights) computes."""
    sampling, sampling_state = convert(copy.deepcopy(space), "path_sampling")
    mixing, mixing_state = convert(copy.deepcopy(space), "differentiable")
    mixing.load_state_dict(sampling.state_dict())
    sampling.eval(), mixing.eval()
    for seed in range(3):
        arch = supernet.sample(space, seed=seed)
        sampling_state.set_arch(arch)
        set_weights(mixing_state, arch)
        torch.testing.assert_close(mixing(X), sampling(X))


@pytest.mark.parametrize("name", list(SMALL))
def test_differentiable_supernet_with_one_hot_weights_equals_path_sampling(name):
    _check_mixing_equals_sampling(SMALL[name](), lambda state, arch: state.pin(arch))


def _saturate(state: Any, arch: dict) -> None:
    with torch.no_grad():
        for label in state.labels():
            state.alpha_of(label).fill_(-1e4)[state.alpha_values(label).index(arch[label])] = 0.0


# cell spaces mix every edge (DARTS), which no one-hot weighting turns into a sampled cell
@pytest.mark.parametrize("name", ["proxylessnas", "mobilenetv3", "shufflenet", "autoformer", "nasbench201"])
def test_differentiable_mixing_with_saturated_weights_computes_the_path_sampling_output(name):
    """Unpinned: every candidate runs and the zero-padded outputs are summed, so candidates of
    different widths (channels, heads) must line up where they share weights."""
    _check_mixing_equals_sampling(SMALL[name](), _saturate)


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_darts_v2_has_the_papers_parameter_count():
    net = hub.load_searched_model("darts-v2")
    assert _params(net) == 3_349_342
    assert_plain(net)
    assert net.eval()(X).shape == (2, 10)


def test_darts_v1_parameter_count():
    # the DARTS repository's DARTS_V1 genotype at C=36, 20 cells, no auxiliary head (the paper rounds to 3.3M
    # for its first-order result; this is the count of that genotype's network)
    assert _params(hub.load_searched_model("darts-v1")) == 3_169_414


@pytest.mark.parametrize(("name", "reference"), [("mobilenetv3-large-100", torchvision.models.mobilenet_v3_large),
                                                  ("mobilenetv3-small-100", torchvision.models.mobilenet_v3_small)])
def test_mobilenetv3_published_networks_equal_torchvisions(name, reference):
    net, expected = hub.load_searched_model(name), reference()
    assert _params(net) == _params(expected)
    assert sorted(tuple(p.shape) for p in net.parameters()) == sorted(tuple(p.shape) for p in expected.parameters())
    assert_plain(net)
    # torchvision's weights load into ours when listed in the same order: the same network
    net.load_state_dict(dict(zip(net.state_dict(), expected.state_dict().values())))
    net.eval(), expected.eval()
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(net(x), expected(x))


# Every published network's parameter count as built here, each equal to its authors' own count:
# darts-v1/v2 as the authors' DARTS code builds them (3.3M in the paper for both), the TF-slim networks
# as the released checkpoints (tests below), enas as the authors' ENAS code (test below), the
# ProxylessNAS networks as their training logs print them (test below), the MobileNetV3s as
# torchvision, spos as the authors' SPOS code (3.5M in their README), and AutoFormer-T/S/B as the
# authors' code counts its released subnets (get_sampled_params_numel; the paper prints 5.7M, 22.9M
# and 54M, the README 5.8M, 22.9M and 53.7M).
PUBLISHED_PARAMS = {
    "darts-v1": 3_169_414, "darts-v2": 3_349_342,
    "nasnet-a": 3_346_538, "nasnet-a-mobile": 5_289_978, "nasnet-a-large": 88_753_150,
    "amoebanet-a": 3_218_266, "pnas": 3_189_082, "pnasnet-5-large": 86_057_668, "enas": 4_587_372,
    "proxyless-mobile": 4_080_512, "proxyless-gpu": 7_119_848, "proxyless-cpu": 4_361_648,
    "mobilenetv3-large-100": 5_483_032, "mobilenetv3-small-100": 2_542_856, "spos": 3_558_464,
    "autoformer-tiny": 5_867_944, "autoformer-small": 22_891_432, "autoformer-base": 53_691_688,
}
IMAGENET_CELL_NETWORKS = {"nasnet-a-mobile", "nasnet-a-large", "pnasnet-5-large"}


@pytest.mark.parametrize(("name", "released"), [
    ("nasnet-a-mobile", 5_289_978), ("nasnet-a-large", 88_753_150), ("pnasnet-5-large", 86_057_668)])
def test_tf_slim_networks_have_the_released_checkpoints_parameter_counts(name, released):
    # the released ImageNet checkpoints (1000 classes, no auxiliary head) pin every detail of the
    # TF-slim network that the CIFAR-10 entries share
    assert _params(hub.load_searched_model(name)) == released


@pytest.mark.parametrize(("name", "reported"), [
    ("nasnet-a", 3.3e6), ("amoebanet-a", 3.2e6), ("pnas", 3.2e6), ("nasnet-a-mobile", 5.3e6),
    ("pnasnet-5-large", 86.1e6), ("enas", 4.6e6)])
def test_nasnet_family_networks_round_to_the_papers_figures(name, reported):
    assert round(_params(hub.load_searched_model(name)), -5) == reported


def test_every_published_network_has_a_pinned_parameter_count():
    assert sorted(PUBLISHED_PARAMS) == hub.list_searched_models()


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_network_is_plain_torch_and_runs_at_its_input_size(name):
    net = hub.load_searched_model(name).eval()
    assert _params(net) == PUBLISHED_PARAMS[name]
    assert_plain(net)
    cifar = issubclass(_REGISTRY[name].space, hub.NDS) and name not in IMAGENET_CELL_NETWORKS
    size, classes = (32, 10) if cifar else (224, 1000)
    with torch.no_grad():
        assert net(torch.randn(1, 3, size, size)).shape == (1, classes)


def _multiply_adds(net: torch.nn.Module, size: int) -> float:
    from algorithms.cost import count_macs

    return count_macs(net, torch.randn(1, 3, size, size))


def test_spos_network_has_the_authors_multiply_adds():
    # the authors' README: 323M FLOPs (multiply-adds), 3.5M parameters
    net = hub.load_searched_model("spos")
    assert round(_multiply_adds(net, 224) / 1e6) == 323
    assert int(_params(net) / 1e5) / 10 == 3.5


def test_published_networks_are_scoped_to_their_space():
    assert hub.ProxylessNAS.list_searched_models() == ["proxyless-cpu", "proxyless-gpu", "proxyless-mobile"]
    assert hub.AutoformerSpace.list_searched_models() == ["autoformer-base", "autoformer-small", "autoformer-tiny"]
    with pytest.raises(ValueError, match="unknown searched model 'spos' of DARTS; available: darts-v1, darts-v2"):
        hub.DARTS.load_searched_model("spos")


def test_tf_slim_network_trains_with_its_auxiliary_head_and_drop_path():
    from hub.nasnet_published import NASNET_A_NORMAL, NASNET_A_REDUCTION

    net = hub.SlimCellNetwork(NASNET_A_NORMAL, NASNET_A_REDUCTION, num_cells=3, filters=8, auxiliary_head=True,
                              drop_path_prob=0.3)
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    (logits.sum() + aux.sum()).backward()
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_enas_final_network_of_the_released_script_has_the_authors_code_count_and_widths():
    # the released final-training script (15 layers, 36 filters) builds 3,894,372 parameters in the
    # authors' TensorFlow code, whose cells output 180, 288, 360, 576 and 720 channels
    from hub.nasnet_published import ENAS_CIFAR_ARC

    net = hub.ENASMicroNetwork(ENAS_CIFAR_ARC, num_layers=15, filters=36)
    assert _params(net) == 3_894_372
    widths = [cell.out_channels for cell in net.cells]
    assert widths == [180] * 5 + [288] + [360] * 5 + [576] + [720] * 5


def test_proxylessnas_networks_match_the_released_training_logs():
    for name, params, flops in (("proxyless-mobile", 4.08, 320.4), ("proxyless-gpu", 7.12, 465.3),
                                ("proxyless-cpu", 4.36, 439.2)):
        net = hub.load_searched_model(name)
        assert round(_params(net) / 1e6, 2) == params
        assert round(_multiply_adds(net, 224) / 1e6, 1) == flops


def test_enas_final_network_runs_its_cells_at_any_depth():
    from hub.nasnet_published import ENAS_CIFAR_ARC

    net = hub.ENASMicroNetwork(ENAS_CIFAR_ARC, num_layers=3, filters=8, drop_path_prob=0.2)
    net(torch.randn(2, 3, 32, 32)).sum().backward()


def test_unknown_tf_slim_operation_names_it_and_the_allowed_ones():
    from hub.nasnet_published import CellSpec

    spec = CellSpec(("separable_3x3",) + ("none",) * 9, (0,) * 10, (1, 1, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="unknown TF-slim cell operation 'separable_3x3'; allowed: separable_KxK_N"):
        hub.SlimCellNetwork(spec, spec, num_cells=3, filters=8)


def test_space_sizes():
    assert supernet.search_space(hub.ShuffleNetSpace()).size == 4 ** 20
    assert supernet.search_space(hub.NasBench201()).size == 5 ** 6
    # DARTS cells: node i (2 + predecessors) has two slots, each any of 7 ops on any of i inputs
    per_cell = 1
    for node in range(2, 6):
        per_cell *= (7 * node) ** 2
    assert supernet.search_space(hub.DARTS()).size == per_cell ** 2
    # ProxylessNAS: five stages of depth 1..4 with 6 candidates per block, one stage of a single block
    stage = sum(6 ** d for d in range(1, 5))
    assert supernet.search_space(hub.ProxylessNAS()).size == stage ** 5 * 6


def test_every_space_builds_quickly_at_its_defaults(capsys):
    timings = {}
    for name in ["NASNet", "ENAS", "AmoebaNet", "PNAS", "DARTS", "ProxylessNAS", "MobileNetV3Space",
                 "ShuffleNetSpace", "AutoformerSpace", "NasBench201", "NasBench101"]:
        start = time.perf_counter()
        getattr(hub, name)()
        timings[name] = time.perf_counter() - start
    with capsys.disabled():
        print("\nbuild time at default arguments (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: hub.NDS(["sep_conv_3x3", "conv_9x9"]), "unknown op 'conv_9x9' in op_candidates; allowed:"),
    (lambda: hub.DARTS(width=(16, 0)), r"width must be a positive int or a tuple of them, got \(16, 0\)"),
    (lambda: hub.MobileNetV3Space(width_multipliers=(0.5, -1.0)), "width multipliers must be positive"),
    (lambda: hub.MobileNetV3Space(activation=("gelu",) * 9), "unknown activation 'gelu'"),
    (lambda: hub.ProxylessNAS(base_widths=(32, 16)), "base_widths needs 9 values"),
    (lambda: hub.load_searched_model("darts-v3"), "unknown searched model 'darts-v3'; available: amoebanet-a"),
    (lambda: hub.load_searched_model("darts-v2", pretrained=True), "needs weights=<path"),
])
def test_bad_input_names_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_weights_file_of_another_architecture_is_rejected(tmp_path):
    path = tmp_path / "v1.pt"
    torch.save(hub.load_searched_model("mobilenetv3-small-100").state_dict(), path)
    with pytest.raises(ValueError, match="does not match the architecture 'mobilenetv3-large-100'"):
        hub.load_searched_model("mobilenetv3-large-100", weights=path)
    good = tmp_path / "large.pt"
    net = hub.load_searched_model("mobilenetv3-large-100")
    torch.save(net.state_dict(), good)
    loaded = hub.load_searched_model("mobilenetv3-large-100", pretrained=True, weights=good)
    torch.testing.assert_close(loaded.state_dict()["head.3.weight"], net.state_dict()["head.3.weight"])
