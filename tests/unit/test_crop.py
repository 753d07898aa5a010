import numpy as np
import pytest

from pose_study.data import crop


def ramp(width: int = 96, height: int = 64) -> np.ndarray:
    """Red channel = 2 × source x (so a sampled value reveals its source x coordinate)."""
    x = np.arange(width)[None, :].repeat(height, 0)
    return np.stack([2 * x, np.zeros_like(x), np.zeros_like(x)], axis=-1).astype(np.uint8)


def test_matrix_maps_centre_and_edges():
    m = crop.crop_matrix(np.array([40.0, 30.0]), side=20.0, size=10)
    pts = crop.transform_points(np.array([[40.0, 30.0], [30.0, 20.0], [50.0, 40.0]]), m)
    np.testing.assert_allclose(pts, [[4.5, 4.5], [-0.5, -0.5], [9.5, 9.5]])


@pytest.mark.parametrize("side,size", [(20.0, 40), (60.0, 20), (33.3, 33)], ids=["up", "down", "same"])
def test_crop_image_samples_the_mapped_source_pixel(side, size):
    center = np.array([47.3, 31.0])
    out = crop.crop_image(ramp(), center, side, size)
    inverse = np.linalg.inv(crop.crop_matrix(center, side, size))
    src_x = crop.transform_points(np.stack([np.arange(size), np.zeros(size)], 1).astype(float), inverse)[:, 0]
    inner = slice(3, size - 3)  # away from the zero border and resampling support
    np.testing.assert_allclose(out[size // 2, inner, 0] / 2, src_x[inner], atol=0.51)


def test_single_pixel_lands_where_transform_points_says():
    image = np.zeros((64, 96, 3), np.uint8)
    image[21, 37] = 255
    center, side, size = np.array([40.5, 25.5]), 16.0, 16  # identity scale, integer offset
    out = crop.crop_image(image, center, side, size)
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    np.testing.assert_allclose(crop.transform_points([37.0, 21.0], crop.crop_matrix(center, side, size)), [x, y])


def test_outside_the_image_is_black():
    out = crop.crop_image(np.full((64, 96, 3), 200, np.uint8), np.array([0.0, 0.0]), 40.0, 20)
    assert out[:5, :5].max() == 0 and out[-3:, -3:].min() == 200


def test_intrinsics_follow_the_crop():
    K = np.array([[100.0, 0, 48], [0, 110.0, 32], [0, 0, 1]])
    point = np.array([120.0, -80.0, 2000.0])
    m = crop.crop_matrix(np.array([50.0, 30.0]), 40.0, 64)
    source_px = (K @ point)[:2] / point[2]
    crop_px = (crop.crop_intrinsics(K, m) @ point)
    np.testing.assert_allclose(crop_px[:2] / crop_px[2], crop.transform_points(source_px, m))


def test_box_from_points_uses_valid_points_only():
    pts = np.array([[10.0, 20.0], [30.0, 60.0], [500.0, 500.0]])
    center, side = crop.box_from_points(pts, np.array([True, True, False]), margin=1.25)
    np.testing.assert_allclose(center, [20.0, 40.0])
    assert side == pytest.approx(50.0)
    assert crop.box_from_points(pts, np.array([True, False, False]), 1.25)[1] == 0.0
