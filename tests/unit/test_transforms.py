import math

import pytest
import torch
import torch.nn.functional as F

from pose_study.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, AugmentSpec, Batch, apply_affines, apply_colours,
                                        flip_intrinsics_check,
                                        normalise_images, sample_affines, sample_colours, sampling_grid)
from pose_study.skeletons import CANONICAL

S = 32
L_WRIST, R_WRIST = CANONICAL.index("l_wrist"), CANONICAL.index("r_wrist")


def make_batch(n: int = 4, is_3d: bool = True) -> Batch:
    g = torch.Generator().manual_seed(0)
    joints_3d = torch.randn(n, 17, 3, generator=g) * 200 + torch.tensor([0.0, 0.0, 3000.0])
    k = torch.tensor([[40.0, 0, 15.2], [0, 40.0, 16.1], [0, 0, 1]]).expand(n, 3, 3).clone()
    uvw = joints_3d @ k.transpose(1, 2)
    return Batch(images=torch.rand(n, 3, S, S, generator=g), joints_2d=uvw[..., :2] / uvw[..., 2:],
                 valid_2d=torch.rand(n, 17, generator=g) > 0.3, joints_3d=joints_3d,
                 valid_3d=torch.ones(n, 17, dtype=torch.bool), intrinsics=k,
                 is_3d=torch.full((n,), is_3d))


def linear(zoom: float = 1.0, angle_deg: float = 0.0, flip: bool = False, n: int = 4) -> torch.Tensor:
    a = math.radians(angle_deg)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    mirror = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0]))
    return (mirror @ rot * zoom).expand(n, 2, 2).clone()


@pytest.mark.parametrize("zoom,angle,flip", [(1.0, 0.0, False), (1.2, 0.0, True), (0.8, 25.0, False),
                                             (1.1, -40.0, True)], ids=["identity", "zoom-flip", "shrink-rot", "all"])
def test_projection_of_3d_labels_still_matches_2d(zoom, angle, flip):
    out = apply_affines(make_batch(), linear(zoom, angle, flip))
    assert float(flip_intrinsics_check(out)) < 1e-3


def test_identity_changes_nothing():
    batch = make_batch()
    ref = make_batch()
    out = apply_affines(batch, linear())
    torch.testing.assert_close(out.images, ref.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints_2d, ref.joints_2d)


def test_flip_swaps_left_and_right_and_keeps_masks():
    ref = make_batch()
    ref.valid_2d[:, L_WRIST], ref.valid_2d[:, R_WRIST] = True, False
    batch = make_batch()
    batch.valid_2d = ref.valid_2d.clone()
    out = apply_affines(batch, linear(flip=True))
    # the (annotated) left wrist is now the right wrist, mirrored; the missing right wrist stays missing
    assert out.valid_2d[:, R_WRIST].all() and not out.valid_2d[:, L_WRIST].any()
    torch.testing.assert_close(out.joints_2d[:, R_WRIST, 0], (S - 1) - ref.joints_2d[:, L_WRIST, 0])
    torch.testing.assert_close(out.joints_3d[:, R_WRIST, 0], -ref.joints_3d[:, L_WRIST, 0])
    assert out.valid_2d.sum() == ref.valid_2d.sum()


def test_image_content_moves_with_the_labels():
    batch = make_batch(n=1)
    batch.images.zero_()
    batch.joints_2d[0, 0] = torch.tensor([10.0, 6.0])
    batch.images[0, :, 6, 10] = 1.0  # a bright pixel exactly at joint 0
    out = apply_affines(batch, linear(zoom=1.0, angle_deg=90.0, flip=True, n=1))
    peak = out.images[0, 0].argmax()
    y, x = divmod(int(peak), S)
    assert abs(x - float(out.joints_2d[0, 0, 0])) < 0.51 and abs(y - float(out.joints_2d[0, 0, 1])) < 0.51


@pytest.mark.parametrize("size", [17, 64, 128, 256])
def test_sampling_grid_is_affine_grid_bit_for_bit(size):
    maps = sample_affines(8, torch.zeros(8, dtype=torch.bool),
                          AugmentSpec(scale=0.3, rotation_deg=40, rotation_prob=1.0, flip_prob=0.5),
                          torch.Generator().manual_seed(size))
    inverse = torch.linalg.inv(maps)
    theta = torch.cat([inverse, torch.zeros(8, 2, 1)], dim=2)
    expected = F.affine_grid(theta, [8, 3, size, size], align_corners=False)
    assert torch.equal(sampling_grid(inverse, size), expected)


def test_sampling_is_seeded_and_3d_samples_are_not_rotated():
    spec = AugmentSpec(scale=0.25, rotation_deg=30, rotation_prob=1.0, flip_prob=0.0)
    is_3d = torch.tensor([True, False] * 50)
    a = sample_affines(100, is_3d, spec, torch.Generator().manual_seed(3))
    b = sample_affines(100, is_3d, spec, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    off_diagonal = a[:, 0, 1].abs()
    assert (off_diagonal[is_3d] == 0).all() and (off_diagonal[~is_3d] > 0).any()
    zoom = a.det().abs().sqrt()
    assert ((zoom >= 1 / 1.25 - 1e-6) & (zoom <= 1 / 0.75 + 1e-6)).all()


def test_bad_augment_values_are_named():
    with pytest.raises(ValueError, match="augment.flip_prob"):
        AugmentSpec(flip_prob=1.5)


def test_normalisation_is_rgb_imagenet():
    img = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    out = normalise_images(img)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                             (1 - 0.406) / 0.225]))


def test_colour_jitter_scales_each_channel_in_pixel_units() -> None:
    # a uniform crop of known colour x in [0, 1]: after the jitter, de-normalised pixels are x·c
    x = torch.tensor([0.8, 0.5, 0.25])
    pixels = (x * 255).round().to(torch.uint8).expand(2, 4, 4, 3)
    factors = torch.tensor([[1.0, 0.6, 0.9], [0.7, 1.0, 0.65]])
    out = apply_colours(normalise_images(pixels), factors)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    back = out * std + mean
    expected = (pixels.float() / 255).permute(0, 3, 1, 2) * factors[:, :, None, None]
    assert torch.allclose(back, expected, atol=1e-6)


def test_colour_jitter_off_draws_nothing_and_on_stays_in_range() -> None:
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert sample_colours(8, AugmentSpec(), g) is None
    assert torch.equal(g.get_state(), state)  # the seed's recipe keeps its random stream
    factors = sample_colours(1000, AugmentSpec(colour=0.4), g)
    assert factors.shape == (1000, 3)
    assert factors.min() >= 0.6 and factors.max() <= 1.0 and factors.min() < 0.62 and factors.max() > 0.98


def test_colour_jitter_range_is_checked() -> None:
    with pytest.raises(ValueError, match="augment.colour"):
        AugmentSpec(colour=1.5)
