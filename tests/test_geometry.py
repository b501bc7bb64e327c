import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deeppose.geometry import (
    augmentation_matrix,
    cell_centres,
    crop_matrix,
    crop_pixel_to_normalized,
    denormalize,
    diam,
    invert_affine,
    joint_boxes,
    normalize,
    normalized_to_crop_pixel,
    own_joint,
    square_box,
    transform_points,
    warp_image,
    warp_images_torch,
    whole_image_box,
)
from deeppose.skeleton import LSP14

coords = st.floats(-500, 500, allow_nan=False)
sizes = st.floats(1.0, 400.0, allow_nan=False)


def _gaussian_dot(shape: tuple[int, int], x: float, y: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))


def _centroid(img: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()


def test_normalize_hand_case():
    y = np.array([[[10.0, 20.0], [60.0, 20.0]]])
    b = np.array([[35.0, 20.0, 50.0, 100.0]])
    np.testing.assert_allclose(normalize(y, b), [[[-0.5, 0.0], [0.5, 0.0]]])


@given(st.lists(st.tuples(coords, coords), min_size=1, max_size=14), coords, coords, sizes, sizes)
def test_denormalize_inverts_normalize(points, cx, cy, w, h):
    y = np.array(points)
    b = np.array([cx, cy, w, h])
    np.testing.assert_allclose(denormalize(normalize(y, b), b), y, atol=1e-9, rtol=1e-9)
    yt, bt = torch.from_numpy(y), torch.from_numpy(b)
    np.testing.assert_allclose(normalize(yt, bt).numpy(), normalize(y, b), atol=1e-12)


def test_normalize_is_batched():
    y = np.random.default_rng(0).normal(size=(3, 5, 14, 2))
    b = np.abs(np.random.default_rng(1).normal(size=(3, 5, 4))) + 1
    out = normalize(y, b)
    np.testing.assert_allclose(out[2, 4], (y[2, 4] - b[2, 4, :2]) / b[2, 4, 2:])
    with pytest.raises(ValueError, match="last dimension 4"):
        normalize(y, b[..., :3])


def test_crop_maps_box_edges_to_grid_edges():
    b = np.array([50.0, 40.0, 20.0, 10.0])
    a = crop_matrix(b, (40, 20))
    corners = np.array([[40.0, 35.0], [60.0, 45.0], [50.0, 40.0]])
    np.testing.assert_allclose(transform_points(a, corners), [[-0.5, -0.5], [39.5, 19.5], [19.5, 9.5]])
    # Crop pixels -> normalized crop coordinates equals N(y; b) (Eq. 1) for an unrotated crop.
    np.testing.assert_allclose(crop_pixel_to_normalized(transform_points(a, corners), (40, 20)),
                               normalize(corners, b))
    np.testing.assert_allclose(normalized_to_crop_pixel(normalize(corners, b), (40, 20)), transform_points(a, corners))


def test_augmentation_matrix_defaults_to_the_plain_crop_and_inverts():
    b = np.array([31.0, 47.0, 60.0, 80.0])
    np.testing.assert_allclose(augmentation_matrix(b, (64, 64)), crop_matrix(b, (64, 64)))
    a = augmentation_matrix(b, (64, 48), rotation_deg=33, scale=1.3, shift=(0.1, -0.2), flip=True)
    p = np.array([[3.0, 4.0], [70.0, -5.0]])
    np.testing.assert_allclose(transform_points(invert_affine(a), transform_points(a, p)), p, atol=1e-9)
    # Flip mirrors about the crop's vertical centre line.
    a0 = augmentation_matrix(b, (64, 48))
    a1 = augmentation_matrix(b, (64, 48), flip=True)
    q0, q1 = transform_points(a0, p), transform_points(a1, p)
    np.testing.assert_allclose(q1[:, 0], 63 - q0[:, 0])
    np.testing.assert_allclose(q1[:, 1], q0[:, 1])


def test_rotation_keeps_distances_and_turns_the_content():
    b = np.array([50.0, 50.0, 100.0, 100.0])
    a = augmentation_matrix(b, (100, 100), rotation_deg=90)
    # A point right of the centre: the sampled box turns clockwise on screen, so the point appears above.
    q = transform_points(a, np.array([[70.0, 50.0]]))
    np.testing.assert_allclose(q, [[49.5, 29.5]], atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(x=st.floats(20, 80), y=st.floats(20, 60), rot=st.floats(-45, 45), scale=st.floats(0.7, 1.4),
       flip=st.booleans())
def test_drawn_dot_lands_at_the_warped_joint(x, y, rot, scale, flip):
    image = _gaussian_dot((80, 100), x, y, sigma=3.0).astype(np.float32)
    b = np.array([50.0, 40.0, 90.0, 70.0])
    a = augmentation_matrix(b, (64, 64), rotation_deg=rot, scale=scale, flip=flip)
    expected = transform_points(a, np.array([[x, y]]))[0]
    assume(((expected > 12) & (expected < 52)).all())  # the whole dot must be inside the crop
    crop = warp_image(image, a, (64, 64))
    assert np.linalg.norm(_centroid(crop) - expected) < 0.15
    crop_t = warp_images_torch(torch.from_numpy(image)[None, None], torch.from_numpy(a)[None].float(), (64, 64))
    assert np.linalg.norm(_centroid(crop_t[0, 0].numpy().astype(np.float64)) - expected) < 0.15


@settings(max_examples=15, deadline=None)
@given(rot=st.floats(-60, 60), scale=st.floats(0.5, 2.0), sx=st.floats(-0.2, 0.2), flip=st.booleans())
def test_numpy_and_torch_warps_agree(rot, scale, sx, flip):
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.uniform(0, 1, (70, 90, 3)).astype(np.float32), (0, 0), 2.0)
    a = augmentation_matrix(np.array([45.0, 35.0, 60.0, 60.0]), (48, 48), rot, scale, (sx, 0.0), flip)
    ref = warp_image(image, a, (48, 48))
    out = warp_images_torch(torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(a)[None], (48, 48))
    out = out[0].permute(1, 2, 0).numpy()
    # Compare away from the image border, where OpenCV and grid_sample blend with zeros differently.
    inside = warp_image(np.ones((70, 90), np.float32), a, (48, 48), cv2.INTER_NEAREST) > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert inside.sum() > 100
    # OpenCV quantizes sample positions to 1/32 px; a blurred image keeps that error small.
    assert np.abs(out - ref)[inside].max() < 0.02


def test_batched_crops_equal_single_crops():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.uniform(0, 1, (2, 3, 40, 50)).astype(np.float32))
    boxes = torch.tensor([[[10.0, 10.0, 8.0, 8.0], [30.0, 20.0, 12.0, 12.0], [45.0, 35.0, 10.0, 10.0]],
                          [[5.0, 30.0, 6.0, 6.0], [25.0, 25.0, 16.0, 16.0], [40.0, 5.0, 20.0, 20.0]]])
    a = crop_matrix(boxes, (16, 16))  # (2, 3, 2, 3): K = 3 joint boxes per image
    batched = warp_images_torch(images, a.reshape(6, 2, 3), (16, 16))
    for n in range(2):
        for k in range(3):
            single = warp_images_torch(images[n:n + 1], a[n, k][None], (16, 16))
            torch.testing.assert_close(batched[3 * n + k], single[0])


def test_whole_image_and_square_boxes():
    np.testing.assert_allclose(whole_image_box(100, 50), [49.5, 24.5, 100, 50])
    np.testing.assert_allclose(square_box(np.array([1.0, 2.0, 10.0, 30.0])), [1, 2, 30, 30])
    torch.testing.assert_close(square_box(torch.tensor([[1.0, 2.0, 10.0, 3.0]])), torch.tensor([[1.0, 2.0, 10, 10]]))


def _pose_with_torso(r_sho, l_hip, l_sho, r_hip):
    y = np.zeros((14, 2))
    y[8], y[3], y[9], y[2] = r_sho, l_hip, l_sho, r_hip
    return y


def test_diam_prefers_right_shoulder_left_hip_and_falls_back():
    y = _pose_with_torso((0, 0), (3, 4), (10, 0), (10, 10))
    labelled = np.ones(14, bool)
    assert diam(y, labelled, LSP14) == pytest.approx(5.0)
    labelled[3] = False  # left hip unlabelled -> left shoulder to right hip
    assert diam(y, labelled, LSP14) == pytest.approx(10.0)
    labelled[9] = False
    assert math.isnan(diam(y, labelled, LSP14))
    yt = torch.from_numpy(np.stack([y, y]))
    lt = torch.from_numpy(np.stack([np.ones(14, bool), labelled]))
    out = diam(yt, lt, LSP14)
    assert out[0].item() == pytest.approx(5.0) and math.isnan(out[1].item())


def test_joint_boxes_eq7():
    y = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    boxes = joint_boxes(y, np.array([10.0]), sigma=2.0)
    np.testing.assert_allclose(boxes, [[[1, 2, 20, 20], [3, 4, 20, 20]]])
    bt = joint_boxes(torch.from_numpy(y), torch.tensor([10.0], dtype=torch.float64), sigma=2.0)
    np.testing.assert_allclose(bt.numpy(), boxes)


def test_normalize_takes_one_box_per_pose_or_one_per_joint():
    y = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])  # (1, K=2, 2)
    pose_box = torch.tensor([[20.0, 30.0, 40.0, 20.0]])  # (1, 4)
    joint_boxes_ = torch.tensor([[[10.0, 20.0, 8.0, 8.0], [26.0, 44.0, 8.0, 16.0]]])  # (1, K, 4)
    torch.testing.assert_close(normalize(y, pose_box), torch.tensor([[[-0.25, -0.5], [0.25, 0.5]]]))
    torch.testing.assert_close(normalize(y, joint_boxes_), torch.tensor([[[0.0, 0.0], [0.5, -0.25]]]))
    # a joint box per joint and D draws of it broadcast against the joints
    draws = joint_boxes_.expand(3, 2, 4)[None]  # (1, D=3, K, 4)
    assert normalize(y[:, None], draws).shape == (1, 3, 2, 2)


@pytest.mark.parametrize("size", [7, (9, 5)])
def test_the_pixel_cell_converter_maps_sample_edges_to_box_edges(size):
    n = np.array([size, size]) if isinstance(size, int) else np.array(size)
    edges = np.array([[-0.5, -0.5], n - 0.5])  # the outer edges of the first and last pixels
    np.testing.assert_allclose(crop_pixel_to_normalized(edges, size), [[-0.5, -0.5], [0.5, 0.5]])
    q = torch.rand(5, 2, dtype=torch.float64) * 10
    torch.testing.assert_close(crop_pixel_to_normalized(normalized_to_crop_pixel(q, size), size), q)


def test_cell_centres_and_own_joint():
    torch.testing.assert_close(cell_centres(4), torch.tensor([-0.375, -0.125, 0.125, 0.375]))
    psi = torch.arange(2 * 3 * 3 * 2, dtype=torch.float32).view(6, 3, 2)  # 6 crops, K = 3 outputs each
    joint = torch.arange(3).repeat(2)  # crop n was cut for joint n % 3
    assert torch.equal(own_joint(psi, joint), torch.stack([psi[n, n % 3] for n in range(6)]))


def test_the_box_converter_corner_and_centre():
    from deeppose.geometry import centre_box, corner_box

    # a 4 x 2 box whose top-left pixel is (10, 20): pixel centres 10..13 and 20..21
    box = centre_box(10, 20, 4, 2)
    np.testing.assert_allclose(box, [11.5, 20.5, 4, 2])
    assert corner_box(box) == [10.0, 20.0, 4.0, 2.0]
