"""Known answers and round trips for pose_study.data.codecs."""

from __future__ import annotations

import pytest
import torch

from pose_study.data.codecs import (
    decode_depth,
    decode_heatmaps,
    encode_depth,
    encode_heatmaps,
    flip_back,
    sample_maps,
    soft_argmax,
)
from pose_study.skeletons import CANONICAL, ROOT

K = CANONICAL.num_joints
SIZE = 16


def random_joints(batch: int, low: float, high: float, seed: int = 0) -> torch.Tensor:
    """[B, K, 2] uniform sub-pixel joints in [low, high)."""
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(batch, K, 2, generator=generator)


def all_valid(batch: int) -> torch.Tensor:
    return torch.ones(batch, K, dtype=torch.bool)


def test_encode_peak_at_subpixel_centre() -> None:
    joints = torch.tensor([[[5.25, 7.75]]])
    heatmap = encode_heatmaps(joints, torch.ones(1, 1, dtype=torch.bool), SIZE, sigma=2.0)[0, 0]
    assert heatmap.shape == (SIZE, SIZE)
    assert heatmap[7, 5].item() == pytest.approx(torch.exp(torch.tensor(-(0.25**2 + 0.75**2) / 8)).item())
    assert heatmap[8, 5] > heatmap[7, 5]  # y = 7.75 is nearer row 8: not truncated to int


def test_encode_integer_centre_has_peak_one() -> None:
    heatmap = encode_heatmaps(torch.tensor([[[4.0, 9.0]]]), torch.ones(1, 1, dtype=torch.bool), SIZE)
    assert heatmap.max().item() == 1.0
    assert heatmap[0, 0, 9, 4].item() == 1.0


@pytest.mark.parametrize(
    "x, valid, expect_zero",
    [(8.0, False, True), (-6.5, True, True), (SIZE - 1 + 6.5, True, True), (-2.0, True, False)],
    ids=["invalid", "left_beyond_3sigma", "right_beyond_3sigma", "just_outside_kept"],
)
def test_encode_zero_maps(x: float, valid: bool, expect_zero: bool) -> None:
    heatmap = encode_heatmaps(torch.tensor([[[x, 8.0]]]), torch.tensor([[valid]]), SIZE, sigma=2.0)
    assert bool((heatmap == 0).all()) is expect_zero


def test_encode_non_square_size() -> None:
    heatmaps = encode_heatmaps(random_joints(2, 2, 10), all_valid(2), (12, 20))
    assert heatmaps.shape == (2, K, 12, 20)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("low, high", [(1.0, SIZE - 2.0), (-0.5, 1.0), (SIZE - 2.0, SIZE - 0.5)],
                         ids=["interior", "left_top_border", "right_bottom_border"])
def test_heatmap_round_trip(sigma: float, low: float, high: float) -> None:
    joints = random_joints(4, low, high, seed=int(sigma * 10))
    coords, maxvals = decode_heatmaps(encode_heatmaps(joints, all_valid(4), SIZE, sigma))
    assert (coords - joints).abs().max().item() < 0.05
    assert bool(((maxvals > 0.5) & (maxvals <= 1.0)).all())


def test_decode_invalid_joint_has_zero_maxval() -> None:
    valid = all_valid(1)
    valid[0, 3] = False
    _, maxvals = decode_heatmaps(encode_heatmaps(random_joints(1, 2, 12), valid, SIZE))
    assert maxvals[0, 3].item() == 0.0 and bool((maxvals[0, valid[0]] > 0).all())


def test_decode_falls_back_to_quarter_shift() -> None:
    heatmaps = torch.zeros(1, 1, SIZE, SIZE)
    heatmaps[0, 0, 6, :3] = torch.tensor([1.0, 0.1, 0.5])  # log not concave on the border stencil
    coords, _ = decode_heatmaps(heatmaps)
    assert coords[0, 0].tolist() == pytest.approx([-0.25, 6.0])


def test_soft_argmax_of_one_hot_is_that_pixel() -> None:
    heatmaps = torch.zeros(2, K, SIZE, SIZE)
    xs, ys = torch.randint(0, SIZE, (2, K)), torch.randint(0, SIZE, (2, K))
    heatmaps.view(2, K, -1).scatter_(2, (ys * SIZE + xs)[..., None], 1.0)
    coords = soft_argmax(heatmaps, beta=100.0)
    assert torch.allclose(coords, torch.stack([xs, ys], dim=-1).float(), atol=1e-3)


def test_soft_argmax_is_differentiable() -> None:
    heatmaps = encode_heatmaps(random_joints(1, 3, 12), all_valid(1), SIZE).requires_grad_()
    soft_argmax(heatmaps, beta=10.0).sum().backward()
    assert heatmaps.grad is not None and heatmaps.grad.abs().sum() > 0


def test_sample_maps_is_bilinear() -> None:
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    slope = torch.linspace(-1, 1, K)[None, :, None, None]
    maps = (slope * xs + 2 * ys + 3).expand(2, K, SIZE, SIZE).clone().requires_grad_()
    coords = random_joints(2, 0, SIZE - 1)
    values = sample_maps(maps, coords)
    expected = slope[..., 0, 0] * coords[..., 0] + 2 * coords[..., 1] + 3
    assert values.shape == (2, K)
    assert torch.allclose(values, expected, atol=1e-4)
    values.sum().backward()
    assert maps.grad.sum().item() == pytest.approx(2 * K)


def mirrored(joints: torch.Tensor, width: int) -> torch.Tensor:
    """Joints of the mirrored image: joint j is the original joint perm[j], x → W-1-x."""
    perm = torch.as_tensor(CANONICAL.flip_permutation())
    out = joints[:, perm].clone()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def test_flip_back_decodes_to_original_joint() -> None:
    joints = random_joints(2, 1, SIZE - 2)
    flipped_output = encode_heatmaps(mirrored(joints, SIZE), all_valid(2), SIZE)
    coords, _ = decode_heatmaps(flip_back(flipped_output, CANONICAL.flip_permutation()))
    assert (coords - joints).abs().max().item() < 0.05


def test_flip_test_time_augmentation_average() -> None:
    joints = random_joints(2, 1, SIZE - 2, seed=3)
    output = encode_heatmaps(joints, all_valid(2), SIZE)
    flipped_output = encode_heatmaps(mirrored(joints, SIZE), all_valid(2), SIZE)
    averaged = (output + flip_back(flipped_output, CANONICAL.flip_permutation())) / 2
    coords, _ = decode_heatmaps(averaged)
    assert (coords - joints).abs().max().item() < 0.05


def test_flip_back_twice_is_identity() -> None:
    maps = torch.randn(2, K, 8, 12)
    perm = CANONICAL.flip_permutation()
    assert torch.equal(flip_back(flip_back(maps, perm), perm), maps)


def test_flip_back_rejects_wrong_permutation() -> None:
    with pytest.raises(ValueError, match="flip_perm"):
        flip_back(torch.zeros(1, K, 4, 4), list(range(K - 1)))


def intrinsics(batch: int, focal: float, crop: float) -> torch.Tensor:
    k = torch.zeros(batch, 3, 3)
    k[:, 0, 0], k[:, 1, 1] = focal, focal * 1.1
    k[:, :2, 2], k[:, 2, 2] = crop / 2, 1.0
    return k


def test_encode_depth_known_answer() -> None:
    joints = torch.zeros(1, K, 3)
    joints[..., 2] = 5000.0
    joints[0, 3, 2] = 5100.0  # 100 mm behind the root
    k = intrinsics(1, 500.0, 256.0)
    k[:, 1, 1] = 500.0
    depth = encode_depth(joints, k, crop_size=256)
    assert depth[0, ROOT].item() == 0.0
    assert depth[0, 3].item() == pytest.approx(100 * 500 / (5000 * 256))


def test_depth_round_trip() -> None:
    generator = torch.Generator().manual_seed(0)
    joints = torch.randn(4, K, 3, generator=generator) * 400
    joints[..., 2] += torch.linspace(2500, 7000, 4)[:, None]
    k = intrinsics(4, 300.0, 64.0)
    depth = encode_depth(joints, k, crop_size=64)
    root_depth = joints[:, ROOT, 2]
    relative_mm = decode_depth(depth, root_depth, k, crop_size=64)
    assert torch.allclose(relative_mm, joints[..., 2] - root_depth[:, None], atol=1e-2)
