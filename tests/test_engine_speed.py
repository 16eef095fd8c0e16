"""The engine's shortcuts compute exactly what the plain computation does (issue 17, items 2 and 3).

The differentiable cell shares one ReLU per edge input, fuses each node's weighted sum and can
recompute its activations in backward; the binary-gate architecture step computes only the
architecture weights' gradient. Each is checked against the plain computation, in fp32.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hub
import supernet.nn as nn
from supernet.oneshot import convert
from supernet.oneshot.cell import DifferentiableCell, set_checkpointing
from supernet.oneshot.choices import weighted_sum


class _CountOps(TorchDispatchMode):
    """How many times each aten op ran."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _plain_node_output(self, node, states):
    """A node as a plain DARTS supernet computes it: every candidate on its own input, sum of w * op(x)."""
    weights, exact = self.edge_weights(node)
    edges = self.edges[node - self.num_predecessors]
    total = None
    for j in range(node):
        ops = [edges[j][name] for name in self.op_names]
        out = weighted_sum(weights[j], lambda i, ops=ops, j=j: ops[i](states[j]), len(ops), exact)
        if out is not None:
            total = out if total is None else total + out
    return total


def _darts_supernet():
    torch.manual_seed(0)
    net, state = convert(hub.DARTS(width=4, num_cells=3, dataset="cifar", num_labels=10), "differentiable")
    with torch.no_grad():
        for alpha in state.parameters():
            alpha.normal_(0, 1)
    return net.train(), state


def _step(net, x, y):
    """Logits, loss gradients of every parameter (weights and alphas) and the BatchNorm statistics after."""
    out = net(x)
    out = out[0] if isinstance(out, tuple) else out
    params = [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), params, allow_unused=True)
    return out.detach(), grads, [b.clone() for b in net.buffers()]


def _assert_equal_up_to_rounding(got, want, rtol=1e-5):
    """Gradient lists equal up to fp32 summation order. Entries near zero (a conv bias before
    BatchNorm gets an exact 0 in theory, rounding noise in practice) are compared at the scale
    of the largest gradient."""
    scale = max(float(w.abs().max()) for w in want if w is not None)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=rtol, atol=rtol * scale)


def _assert_same_step(got, want):
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert len(got[1]) == len(want[1])
    _assert_equal_up_to_rounding(got[1], want[1])
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)


def test_darts_cell_outputs_and_gradients_equal_the_plain_supernet(monkeypatch):
    net, _ = _darts_supernet()
    x, y = _batch()
    fast = _step(copy.deepcopy(net), x, y)
    monkeypatch.setattr(DifferentiableCell, "node_output", _plain_node_output)
    plain = _step(copy.deepcopy(net), x, y)
    _assert_same_step(fast, plain)


def test_checkpointed_darts_cells_give_the_same_step_and_batchnorm_statistics():
    net, _ = _darts_supernet()
    x, y = _batch()
    want = _step(copy.deepcopy(net), x, y)
    checkpointed = copy.deepcopy(net)
    assert set_checkpointing(checkpointed) == 3
    _assert_same_step(_step(checkpointed, x, y), want)


def test_checkpointed_darts_cells_keep_less_for_backward():
    def saved_bytes(net):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        x, y = _batch()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            torch.nn.functional.cross_entropy(net(x), y)
        return total

    net, _ = _darts_supernet()
    plain = saved_bytes(copy.deepcopy(net))
    checkpointed = copy.deepcopy(net)
    set_checkpointing(checkpointed)
    assert saved_bytes(checkpointed) < 0.25 * plain


def test_set_checkpointing_without_differentiable_cells_names_what_is_needed():
    with pytest.raises(ValueError, match="no differentiable cell"):
        set_checkpointing(torch.nn.Linear(2, 2))


class _ReluCells(nn.Module):
    """A cell whose candidates start with a ReLU (one nested, as DARTS's SepConv), and one that does not."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.Cell({
            "relu_conv": lambda node, op, inp: nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)),
            "relu_conv3": lambda node, op, inp: nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)),
            "nested": lambda node, op, inp: nn.Sequential(nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)),
                                                          nn.BatchNorm2d(4)),
            "pool": nn.AvgPool2d(3, 1, 1),
        }, num_nodes=2, num_ops_per_node=2, num_predecessors=2, merge_op="all", label="cell")

    def forward(self, x):
        return self.cell(x, x)


def test_differentiable_cell_applies_one_relu_per_edge_and_one_fused_sum_per_node(monkeypatch):
    torch.manual_seed(0)
    net, _ = convert(_ReluCells(), "differentiable")
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with _CountOps() as fast:
        out = net(x)
    # 5 edges (2 into node 2, 3 into node 3), 3 ReLU candidates on each: one ReLU per edge;
    # each node's sum over its 4 * edges candidate outputs: one product and the rest accumulated in place
    assert fast.counts["relu"] == 5
    assert fast.counts["mul"] == 2 and fast.counts["add"] == 0 and fast.counts["addcmul_"] == 4 * 5 - 2
    monkeypatch.setattr(DifferentiableCell, "node_output", _plain_node_output)
    with _CountOps() as plain:
        want = net(x)
    assert plain.counts["relu"] == 15
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *net.parameters()], grad)
    expected = torch.autograd.grad(want, [x, *net.parameters()], grad)
    _assert_equal_up_to_rounding(got, expected)


def test_an_in_place_or_hooked_relu_is_not_shared():
    torch.manual_seed(0)
    net, _ = convert(_ReluCells(), "differentiable")
    hooked = net.cell.edges[0][0]["relu_conv"][0]
    hooked.register_forward_hook(lambda module, args, output: output * 2)
    net.cell.edges[0][1]["relu_conv3"][0].inplace = True
    with _CountOps() as counts:
        net(torch.randn(2, 4, 5, 5))
    assert counts.counts["relu"] + counts.counts["relu_"] == 5 + 2  # these two run as the user built them


class _TwoLabels(nn.Module):
    """Two chained binary-gate labels of 4 candidates each, without BatchNorm (a hand computation can rerun them)."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.LayerChoice({"c1": nn.Conv2d(3, 4, 1), "c3": nn.Conv2d(3, 4, 3, padding=1),
                                  "c5": nn.Conv2d(3, 4, 5, padding=2), "pool": nn.Sequential(
                                      nn.AvgPool2d(3, 1, 1), nn.Conv2d(3, 4, 1))}, label="op")
        self.act = nn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh(), "sig": nn.Sigmoid(), "id": nn.Identity()},
                                  label="act")
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.act(self.op(x)).mean((2, 3)))


def _proxyless_fit(module, callbacks, batches: int = 4) -> None:
    import warnings

    import pytorch_lightning as pl
    from pytorch_lightning.utilities import CombinedLoader
    from torch.utils.data import DataLoader, TensorDataset

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16 * batches, 3, 6, 6, generator=g), torch.randint(0, 10, (16 * batches,), generator=g)
    half = 8 * batches
    loader = CombinedLoader({"train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=8),
                             "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=8)}, "max_size_cycle")
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=callbacks).fit(module, loader)


def _hand_gate_gradient(module, x, y) -> dict[str, torch.Tensor]:
    """ProxylessNAS's estimate by hand, from the candidates called directly: for each label, the gradient
    of the loss at its output under the active architecture, dotted with each sampled path's output,
    ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` over the two sampled paths j."""
    net, state = module.supernet, module.arch
    arch, paths = state.arch, state.gate_paths
    ops, acts = dict(net.op.named_children()), dict(net.act.named_children())
    h = ops[arch["op"]](x).detach().requires_grad_()
    a = acts[arch["act"]](h)
    a_leaf = a.detach().requires_grad_()
    loss = torch.nn.functional.cross_entropy(net.head(a_leaf.mean((2, 3))), y)
    (grad_a,) = torch.autograd.grad(loss, a_leaf)
    (grad_h,) = torch.autograd.grad(a, h, grad_a)
    grads = {}
    for label, grad_out, outputs in (("op", grad_h, lambda v: ops[v](x)), ("act", grad_a, lambda v: acts[v](h))):
        values = state.alpha_values(label)
        index = [values.index(v) for v in paths[label]]
        p = torch.softmax(state.alpha_of(label).detach()[index], 0)
        with torch.no_grad():
            dots = [float((grad_out * outputs(v)).sum()) for v in paths[label]]
        expected = torch.zeros(len(values))
        for n, i in enumerate(index):
            expected[i] = sum(dots[m] * float(p[m]) * (float(n == m) - float(p[n])) for m in range(2))
        grads[label] = expected
    return grads


def test_proxyless_arch_gradient_is_the_two_path_estimate_computed_by_hand():
    import pytorch_lightning as pl

    from algorithms import ProxylessModule

    torch.manual_seed(0)
    module = ProxylessModule(_TwoLabels(), arch_learning_rate=0.05)
    with torch.no_grad():
        for alpha in module.arch.parameters():
            alpha.normal_(0, 1)
    seen = []
    criterion = module.criterion

    def record(x, y):
        seen.append((x, y))
        return criterion(x, y)

    module.criterion = record
    checked = []

    class Check(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            def before_arch_step(optimizer, args, kwargs):
                want = _hand_gate_gradient(pl_module, *seen[-1])
                for label, grad in want.items():
                    torch.testing.assert_close(pl_module.arch.alpha_of(label).grad, grad, rtol=1e-4, atol=1e-7)
                checked.append(True)

            pl_module.optimizers()[1].optimizer.register_step_pre_hook(before_arch_step)

    _proxyless_fit(module, [Check()])
    assert len(checked) == 4


def test_proxyless_arch_step_computes_no_weight_gradient():
    from algorithms import ProxylessModule

    torch.manual_seed(0)
    module = ProxylessModule(_TwoLabels())
    in_weight_step, outside = [False], []
    weight_step = module.weight_step

    def flagged(*args, **kwargs):
        in_weight_step[0] = True
        try:
            return weight_step(*args, **kwargs)
        finally:
            in_weight_step[0] = False

    module.weight_step = flagged
    for p in module.supernet.parameters():
        p.register_hook(lambda grad: outside.append(not in_weight_step[0]))
    _proxyless_fit(module, [])
    assert outside and not any(outside), "weight gradients computed in the architecture step"
    assert all(p.requires_grad for p in module.supernet.parameters())


def test_binary_gate_other_path_runs_under_the_forward_autocast():
    # backward does not inherit autocast: the other sampled path, computed there, must see what the active
    # path saw (a bf16 input, fp32 weights) and give the two-path gradient from its bf16 output
    torch.manual_seed(1)
    candidates = [torch.nn.Linear(3, 3) for _ in range(3)]
    net, state = convert(nn.Sequential(torch.nn.Linear(3, 3), nn.LayerChoice(candidates, label="op")), "binary_gate")
    state.gate_paths, state.arch_gradients = {"op": ["0", "2"]}, True
    state.set_arch({"op": "2"})
    x = torch.randn(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
        h = net[0](x)
        outputs = [candidates[j](h).float() for j in (0, 2)]
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    p = torch.softmax(state.alpha_of("op").detach()[[0, 2]], 0)
    dots = [float(o.sum()) for o in outputs]
    expected = [sum(dots[m] * p[m] * (float(n == m) - p[n]) for m in range(2)) for n in range(2)]
    torch.testing.assert_close(state.alpha_of("op").grad[[0, 2]], torch.tensor(expected), rtol=2e-2, atol=1e-3)


def _entangled_gate_gradients(dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    # a conv of entangled width and kernel, both labels gated (active 8 wide, 3x3; the other paths 4 wide, 5x5)
    torch.manual_seed(2)
    width, kernel = nn.ValueChoice([4, 8], label="width"), nn.ValueChoice([3, 5], label="kernel")
    # a plain layer first: under autocast the entangled conv's input is then bf16, its weight fp32
    space = nn.Sequential(torch.nn.Conv2d(3, 3, 1), nn.Conv2d(3, width, kernel, padding=(kernel - 1) // 2),
                          torch.nn.ReLU())
    net, state = convert(space, "binary_gate")
    state.gate_paths, state.arch_gradients = {"width": [4, 8], "kernel": [3, 5]}, True
    state.set_arch({"width": 8, "kernel": 3})
    x = torch.randn(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        y = net(x)
    (y.float() - 0.1).square().sum().backward()
    return {label: state.alpha_of(label).grad.clone() for label in ("width", "kernel")}


def test_binary_gates_of_entangled_units_run_under_bf16_autocast_with_the_fp32_gradient():
    # the other paths of a weight-entangled unit are computed in backward, which does not inherit autocast
    fp32, bf16 = _entangled_gate_gradients(None), _entangled_gate_gradients(torch.bfloat16)
    for label in fp32:
        assert fp32[label].abs().max() > 0
        torch.testing.assert_close(bf16[label], fp32[label], rtol=3e-2, atol=3e-2 * float(fp32[label].abs().max()))



def test_an_in_place_op_after_a_gated_unit_leaves_the_gate_gradient_exact():
    # the gate keeps the active output for its backward, so the output it passes on must be a separate tensor:
    # a view would make ReLU(inplace=True) an error, an alias would let it overwrite what the gate needs
    torch.manual_seed(4)
    width, kernel = nn.ValueChoice([4, 8], label="width"), nn.ValueChoice([3, 5], label="kernel")
    net, state = convert(nn.Sequential(torch.nn.Conv2d(3, 3, 1), nn.Conv2d(3, width, kernel, padding=(kernel - 1) // 2),
                                       torch.nn.ReLU(inplace=True)), "binary_gate")
    state.gate_paths, state.arch_gradients = {"width": [4, 8], "kernel": [3, 5]}, True
    state.set_arch({"width": 8, "kernel": 3})
    x = torch.randn(2, 3, 6, 6)
    grads = []
    for inplace in (True, False):
        net[2].inplace = inplace
        state.alpha.zero_grad()
        (net(x) - 0.1).square().sum().backward()
        grads.append([state.alpha_of(label).grad.clone() for label in ("width", "kernel")])
    assert all(g.abs().max() > 0 for g in grads[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_a_label_on_entangled_units_gets_the_sum_of_their_two_path_estimates():
    # the documented deviation (docs/algorithms.md): each weight-entangled unit a label reaches has its own gate
    # (the authors gate whole blocks), so the label's gradient sums one two-path estimate per unit, each unit's
    # other value computed on its active input
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(5)
    width = nn.ValueChoice([4, 8], label="w")
    # tanh between: with a linear (or ReLU) link the two units' estimates would be equal
    net, state = convert(nn.Sequential(nn.Conv2d(3, width, 3, padding=1), torch.nn.Tanh(), nn.Conv2d(width, 4, 1)),
                         "binary_gate")
    state.gate_paths, state.arch_gradients = {"w": [4, 8]}, True
    state.set_arch({"w": 8})
    x = torch.randn(2, 3, 5, 5)
    (net(x) - 0.1).square().sum().backward()

    (w1, b1), (w2, b2) = [(m.weight.detach(), m.bias.detach()) for m in (net[0], net[2])]
    z1 = F.conv2d(x, w1, b1, padding=1).requires_grad_()
    z2 = F.conv2d(z1.tanh(), w2, b2)
    loss = (z2 - 0.1).square().sum()
    g1, g2 = torch.autograd.grad(loss, [z1, z2])
    z1_narrow = torch.cat([F.conv2d(x, w1[:4], b1[:4], padding=1), torch.zeros(2, 4, 5, 5)], 1)
    z2_narrow = F.conv2d(z1.detach()[:, :4].tanh(), w2[:, :4], b2)
    dots = [[float((g1 * z1_narrow).sum()), float((g1 * z1.detach()).sum())],
            [float((g2 * z2_narrow).sum()), float((g2 * z2.detach()).sum())]]
    p = torch.softmax(state.alpha_of("w").detach(), 0)
    expected = [sum(d[m] * p[m] * (float(m == n) - p[n]) for d in dots for m in range(2)) for n in range(2)]
    torch.testing.assert_close(state.alpha_of("w").grad, torch.tensor(expected), rtol=1e-4, atol=1e-6)
