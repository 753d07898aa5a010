"""Single-frame lifters (mlp, graph, transformer): forward contract, backward, FLOPs, parameters,
a tiny overfit, and weight files."""

from __future__ import annotations

import pytest
import torch

from pose_study.lifters import LIFTERS, build_lifter, lifter_flops, load_lifter, save_lifter
from pose_study.lifters.graph import normalised_adjacency
from pose_study.skeletons import CANONICAL, ROOT

KINDS = ("mlp", "graph", "transformer")
PRESETS = [name for name, preset in LIFTERS.items() if preset.kind in KINDS]
K = CANONICAL.num_joints
MAX_TINY_PARAMS = 500_000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these forwards are tiny and the CPU cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def example(batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised 2D input with about 20 % of joints invalid (zeroed)."""
    gen = torch.Generator().manual_seed(seed)
    valid = torch.rand(batch, frames, K, generator=gen) > 0.2
    x = torch.randn(batch, frames, K, 2, generator=gen) * valid[..., None]
    return x, valid


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_lifter(name, K)


def mlp_parameters(width: int, blocks: int, frames: int) -> int:
    """Martinez MLP: stem Linear+BN, 2 Linear+BN per block, head Linear (BN: weight and bias)."""
    stem = frames * K * 3 * width + width + 2 * width
    block = 2 * (width * width + width + 2 * width)
    return stem + blocks * block + width * K * 3 + K * 3


def mlp_flops(width: int, blocks: int, frames: int) -> int:
    """2 FLOPs per multiply-add of the linear layers (the counter ignores BN, ReLU and the bias)."""
    return 2 * (frames * K * 3 * width + 2 * blocks * width * width + width * K * 3)


@pytest.mark.parametrize("name", PRESETS)
def test_forward_backward_contract(name):
    lifter = build(name)
    x, valid = example(4, lifter.frames)
    out = lifter(x, valid)
    assert out.shape == (4, K, 3)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, ROOT], torch.zeros(4, 3))
    out.square().sum().backward()
    grads = [p.grad for p in lifter.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", PRESETS)
def test_deterministic_and_eval_ignores_batch(name):
    first, second = build(name, seed=3).eval(), build(name, seed=3).eval()
    x, valid = example(5, first.frames)
    assert torch.equal(first(x, valid), second(x, valid))
    torch.testing.assert_close(first(x[:2], valid[:2]), first(x, valid)[:2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", PRESETS)
def test_invalid_joints_ignore_their_coordinates(name):
    lifter = build(name).eval()
    x, valid = example(3, lifter.frames)
    moved = x + 5.0 * (~valid)[..., None]
    torch.testing.assert_close(lifter(moved, valid), lifter(x, valid))


@pytest.mark.parametrize("name", PRESETS)
def test_flops_and_parameters(name):
    lifter, twin = build(name, seed=0), build(name, seed=1)
    flops = lifter_flops(lifter)
    assert flops > 0 and flops == lifter_flops(twin)
    params = sum(p.numel() for p in lifter.parameters())
    assert params == sum(p.numel() for p in twin.parameters())
    preset = LIFTERS[name]
    if preset.kind == "mlp":
        assert params == mlp_parameters(preset.width, preset.blocks, preset.frames)
        assert flops == mlp_flops(preset.width, preset.blocks, preset.frames)
    if name.endswith("_tiny"):
        assert params < MAX_TINY_PARAMS


def test_mlp_tiny_parameters_known():
    assert sum(p.numel() for p in build("mlp_tiny").parameters()) == 292_147
    assert lifter_flops(build("mlp_tiny")) == 576_512


def test_graph_adjacency_symmetric_normalised():
    adjacency = normalised_adjacency(CANONICAL)
    assert torch.equal(adjacency, adjacency.T)
    # pelvis has 3 children + self loop (degree 4); r_hip has pelvis, r_knee + self (degree 3)
    torch.testing.assert_close(adjacency[0, 0], torch.tensor(1 / 4))
    torch.testing.assert_close(adjacency[1, 0], torch.tensor(1 / (4 * 3) ** 0.5))
    assert adjacency[3, 0] == 0  # ankle and pelvis are not adjacent
    assert int((adjacency > 0).sum()) == K + 2 * len(CANONICAL.bones)


def test_graph_rejects_other_skeletons():
    with pytest.raises(ValueError, match="num_joints=16"):
        build_lifter("graph_tiny", 16)


def test_mlp_tiny_overfits_linear_map():
    """64 samples of a fixed random linear 2D → 3D map: 200 Adam steps bring the error far below
    the target's spread."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, K, 2, generator=gen)
    valid = torch.ones(64, 1, K, dtype=torch.bool)
    target = (x.flatten(1) @ torch.randn(2 * K, 3 * K, generator=gen) / (2 * K) ** 0.5).unflatten(1, (K, 3))
    target = target - target[:, ROOT : ROOT + 1]
    lifter = build("mlp_tiny")
    optimiser = torch.optim.Adam(lifter.parameters(), lr=1e-3)
    for _ in range(200):
        optimiser.zero_grad()
        loss = (lifter(x, valid) - target).square().mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        error = (lifter.eval()(x, valid) - target).square().mean()
    assert error < 0.05 * target.var()


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip(name, tmp_path):
    lifter = build(name)
    with torch.no_grad():  # move BN statistics off their defaults so they must be saved
        lifter.train()(*example(8, lifter.frames, seed=1))
    save_lifter(tmp_path / "model.pt", lifter)
    loaded = load_lifter(tmp_path / "model.pt")
    x, valid = example(3, lifter.frames, seed=2)
    assert loaded.preset_name == name
    assert torch.equal(loaded.eval()(x, valid), lifter.eval()(x, valid))
