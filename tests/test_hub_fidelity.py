"""Hub spaces as their authors' search code builds them (issue 14, items 2 and 4).

* The DARTS search network (Liu et al. 2019, appendix A.1.1; quark0/darts cnn/model_search.py) uses
  BatchNorm without affine parameters in every candidate operation and in the cells' preprocessing,
  and follows each pooling candidate by such a BatchNorm; the network that is trained after the
  search (cnn/model.py) has affine BatchNorm and bare pools. The NDS spaces do the same.
* The SPOS supernet (megvii-model/SinglePathOneShot src/Supernet/blocks.py and network.py) has
  affine-free BatchNorm everywhere; the fixed network keeps affine BatchNorm.
* AutoFormer's supernet (microsoft/Cream AutoFormer/model/supernet_transformer.py) holds one class
  token and one position embedding of the largest width and slices them to the sampled width.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import hub
import supernet
import supernet.nn as nn
from algorithms import DartsModule
from supernet.oneshot import convert

NDS_SPACES = {"nasnet": hub.NASNet, "enas": hub.ENAS, "amoebanet": hub.AmoebaNet, "pnas": hub.PNAS,
              "darts": hub.DARTS}
POOLS = (torch.nn.AvgPool2d, torch.nn.MaxPool2d)
X = torch.randn(2, 3, 32, 32)


def _leaves(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The module's leaf modules in forward order, without drop-path (it is an identity at eval)."""
    return [m for m in module.modules() if not list(m.children()) and type(m).__name__ != "DropPath"]


def _candidates(space: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {f"{label_path}.{name}": op for label_path, choice in space.named_modules()
            if isinstance(choice, nn.LayerChoice) for name, op in choice.named_children()}


def _batchnorms(module: torch.nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


@pytest.mark.parametrize("name", list(NDS_SPACES))
def test_searching_cell_space_candidates_use_affine_free_batchnorm(name):
    space = NDS_SPACES[name](width=4, num_cells=3)
    candidates = _candidates(space)
    assert candidates
    for path, op in candidates.items():
        assert all(not bn.affine for bn in _batchnorms(op)), f"{path}: affine BatchNorm while searching"
        leaves = _leaves(op)
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, POOLS):  # model_search.py MixedOp: nn.Sequential(pool, BatchNorm2d(C, affine=False))
                assert i + 1 < len(leaves) and isinstance(leaves[i + 1], torch.nn.BatchNorm2d), \
                    f"{path}: pooling not followed by a BatchNorm"
                assert leaves[i + 1].num_features == leaf_channels(space, path)
    # the cells' preprocessing too (model_search.py Cell: preprocess0/1 with affine=False); the stem keeps affine
    for cell in [*space.reductions, *(c for stage in space.stages for c in stage.blocks)]:
        assert all(not bn.affine for bn in _batchnorms(cell.preprocessor))
    assert all(bn.affine for bn in _batchnorms(space.stem))

    frozen = supernet.freeze(space, supernet.sample(space, seed=0))
    assert all(bn.affine for bn in _batchnorms(frozen)), "the fixed network keeps affine BatchNorm"
    leaves = _leaves(frozen)
    assert not any(isinstance(a, POOLS) and isinstance(b, _BatchNorm) for a, b in zip(leaves, leaves[1:])), \
        "the fixed network's pools are bare (cnn/model.py)"


def leaf_channels(space: torch.nn.Module, path: str) -> int:
    """The channels of the cell a candidate belongs to (its preprocessors' output width)."""
    cell = space.get_submodule(path.split(".ops.")[0])
    return cell.preprocessor.pre1[1].out_channels


def test_cell_space_affine_argument_overrides_the_automatic_choice():
    searching_affine = hub.DARTS(width=4, num_cells=3, affine=True)
    assert all(bn.affine for bn in _batchnorms(searching_affine))
    for op in _candidates(searching_affine).values():  # the evaluation network's form: bare pools
        leaves = _leaves(op)
        assert not any(isinstance(a, POOLS) and isinstance(b, _BatchNorm) for a, b in zip(leaves, leaves[1:]))
    fixed_free = supernet.freeze(hub.DARTS(width=4, num_cells=3, affine=False),
                                 supernet.sample(hub.DARTS(width=4, num_cells=3), seed=0))
    stem = {id(m) for m in fixed_free.stem.modules()}
    assert all(not bn.affine for bn in _batchnorms(fixed_free) if id(bn) not in stem)


def test_shufflenet_supernet_uses_affine_free_batchnorm_and_its_fixed_network_affine():
    # src/Supernet/blocks.py and network.py: every BatchNorm2d of the supernet has affine=False
    space = hub.ShuffleNetSpace(num_labels=10, channel_search=True)
    assert _batchnorms(space) and all(not bn.affine for bn in _batchnorms(space))
    frozen = supernet.freeze(space, supernet.sample(space, seed=0))
    assert all(bn.affine for bn in _batchnorms(frozen))
    assert all(bn.affine for bn in _batchnorms(hub.ShuffleNetSpace(num_labels=10, affine=True)))
    # the published network is the fixed one: 3,558,464 parameters as the authors' code counts them
    assert sum(p.numel() for p in hub.ShuffleNetSpace.load_searched_model("spos").parameters()) == 3_558_464


def test_darts_supernet_on_a_cell_space_has_no_batchnorm_affine_parameters_in_its_candidates():
    module = DartsModule(hub.DARTS(width=4, num_cells=3))
    names = [name for name, _ in module.supernet.named_parameters()]
    in_candidates = [n for n in names if ".edges." in n]
    assert in_candidates  # the convolutions' weights
    batchnorm_params = {f"{path}.{p}" for path, m in module.supernet.named_modules() if isinstance(m, _BatchNorm)
                        for p in ("weight", "bias")}
    assert not [n for n in in_candidates if n in batchnorm_params]
    # what is left affine: the stem's BatchNorm, as in model_search.py (Network.stem)
    assert sorted(n for n in names if n in batchnorm_params) == ["stem.1.bias", "stem.1.weight"]


def test_darts_search_supernet_has_the_authors_search_network_parameter_count():
    # quark0/darts cnn/model_search.py Network(C=16, num_classes=10, layers=8), counted as their
    # utils.count_parameters_in_MB counts it (every module parameter; the alphas are not module parameters)
    net, _ = convert(hub.DARTS(width=16, num_cells=8, dataset="cifar"), "differentiable")
    assert sum(p.numel() for p in net.parameters()) == 1_930_618


def test_spos_supernet_has_the_authors_supernet_parameter_count():
    # megvii-model/SinglePathOneShot src/Supernet/network.py ShuffleNetV2_OneShot(): 8,388,176 parameters
    assert sum(p.numel() for p in hub.ShuffleNetSpace().parameters()) == 8_388_176


@pytest.mark.parametrize("space_fn", [lambda: hub.ShuffleNetSpace(num_labels=10, channel_search=True),
                                      lambda: hub.DARTS(width=4, num_cells=3)], ids=["shufflenet", "darts"])
def test_inheriting_freeze_of_an_affine_free_supernet_gives_identity_affine(space_fn):
    space = space_fn()
    net, state = convert(copy.deepcopy(space), "path_sampling")
    net.train()
    net(X)  # running statistics move away from their initial values
    net.eval()
    arch = supernet.sample(space, seed=1)
    state.set_arch(arch)
    frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
    assert all(bn.affine for bn in _batchnorms(frozen))
    for bn in _batchnorms(frozen):  # the supernet has no affine parameters to give: they keep their init 1, 0
        torch.testing.assert_close(bn.weight, torch.ones_like(bn.weight))
        torch.testing.assert_close(bn.bias, torch.zeros_like(bn.bias))
    if isinstance(space, hub.ShuffleNetSpace):  # no pooling: the fixed net computes what the supernet computes
        torch.testing.assert_close(frozen(X), net(X))


def _tiny_autoformer() -> hub.AutoformerSpace:
    return hub.AutoformerSpace(search_embed_dim=(32, 48), search_num_heads=(1, 2), search_depth=(2, 3),
                               img_size=32, patch_size=8, num_classes=10)


@pytest.mark.parametrize("family", ["path_sampling", "differentiable"])
def test_autoformer_supernet_shares_one_class_token_across_widths(family):
    net, state = convert(_tiny_autoformer(), family)
    keys = [k for k in net.state_dict() if k.endswith(("cls_token", "pos_embed"))]
    assert sorted(keys) == ["tokens.cls_token", "tokens.pos_embed"]
    assert net.tokens.cls_token.shape == (1, 1, 48) and net.tokens.pos_embed.shape == (1, 17, 48)
    if family != "path_sampling":
        return
    net.eval()
    arch = {**supernet.sample(_tiny_autoformer(), seed=0), "embed_dim": 32}
    state.set_arch(arch)
    frozen = supernet.freeze(net, arch, inherit_weights=True).eval()
    torch.testing.assert_close(frozen.tokens.cls_token, net.tokens.cls_token[..., :32])
    torch.testing.assert_close(frozen.tokens.pos_embed, net.tokens.pos_embed[..., :32])
    # the subnet computes with the leading slice: its token sequence is [cls[:32]; patches] + pos[:32]
    patches = torch.randn(2, 16, 32)
    cls_token, pos_embed = net.tokens.cls_token[..., :32], net.tokens.pos_embed[..., :32]
    expected = torch.cat([cls_token.expand(2, -1, -1), patches], 1) + pos_embed
    torch.testing.assert_close(net.tokens(patches), expected)
    torch.testing.assert_close(frozen(X[:, :, :32, :32]), net(X[:, :, :32, :32]))
