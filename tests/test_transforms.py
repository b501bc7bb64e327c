import numpy as np
import pytest

from deeppose.data import load_dataset
from deeppose.data.sample import Sample
from deeppose.data.torch_dataset import CropDataset
from deeppose.data.transforms import Augmentation, CropParams, crop_sample, sample_params
from deeppose.skeleton import LSP14


def _dot(shape: tuple[int, int], x: float, y: float, sigma: float = 2.5) -> np.ndarray:
    """(H, W, 3) uint8 image with one Gaussian dot centred at (x, y)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    g = 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return np.repeat(g[..., None], 3, axis=2).round().astype(np.uint8)


def _centroid(img: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()


def _sample(joints: np.ndarray, box=None) -> Sample:
    k = len(joints)
    return Sample(None, joints.astype(np.float32), np.ones(k, bool), np.ones(k, bool), box, "x")


@pytest.mark.parametrize("params", [CropParams(), CropParams(rotation_deg=25, scale=1.2, shift=(0.05, -0.05)),
                                    CropParams(rotation_deg=-40, scale=0.9, flip=True)])
def test_drawn_dots_land_on_the_transformed_joints(params):
    shape = (120, 100)
    joints = np.random.default_rng(0).uniform(35, 75, (14, 2))
    sample = _sample(joints)
    _, u, _, _, _ = crop_sample(np.zeros((*shape, 3), np.uint8), sample, LSP14, (128, 128), params)
    q = (u + 0.5) * 128 - 0.5  # crop pixels of the (re-ordered) joints
    perm = LSP14.flip_permutation() if params.flip else list(range(14))
    for k in range(14):
        x, y = joints[perm[k]]  # output joint k comes from input joint perm[k] (its mirror after a flip)
        crop = crop_sample(_dot(shape, x, y), sample, LSP14, (128, 128), params)[0][..., 0].astype(np.float64)
        assert np.linalg.norm(_centroid(crop) - q[k]) < 0.3, f"joint {k}"


def test_flip_swaps_left_and_right_labels():
    joints = np.zeros((14, 2))
    joints[:, 0] = np.arange(14) * 5 + 10  # x grows with the joint index
    joints[:, 1] = 50
    plain = crop_sample(np.zeros((100, 100, 3), np.uint8), _sample(joints), LSP14, (100, 100))[1]
    flipped = crop_sample(np.zeros((100, 100, 3), np.uint8), _sample(joints), LSP14, (100, 100),
                          CropParams(flip=True))[1]
    # r_ankle (0) of the flipped crop is the mirror image of l_ankle (5) of the plain crop.
    np.testing.assert_allclose(flipped[0], [-plain[5, 0], plain[5, 1]], atol=1e-6)
    np.testing.assert_allclose(flipped[12], [-plain[12, 0], plain[12, 1]], atol=1e-6)


def test_joints_pushed_out_of_the_crop_become_invisible():
    joints = np.full((14, 2), 50.0)
    joints[0] = (2.0, 2.0)
    box = np.array([50.0, 50.0, 40.0, 40.0], np.float32)
    _, u, labelled, visible, _ = crop_sample(np.zeros((100, 100, 3), np.uint8), _sample(joints, box), LSP14,
                                             (64, 64))
    assert not visible[0] and visible[1:].all() and labelled.all()
    assert (np.abs(u[0]) > 0.5).any()


def test_random_params_are_deterministic_and_within_ranges():
    aug = Augmentation(rotation_deg=30, scale=(0.8, 1.25), shift=0.1, flip_prob=0.5)
    a = [sample_params(np.random.default_rng([1, k]), aug) for k in range(200)]
    b = [sample_params(np.random.default_rng([1, k]), aug) for k in range(200)]
    assert a == b
    assert all(-30 <= p.rotation_deg <= 30 and 0.8 <= p.scale <= 1.25 and abs(p.shift[0]) <= 0.1 for p in a)
    assert 60 < sum(p.flip for p in a) < 140
    with pytest.raises(ValueError, match="scale range"):
        sample_params(np.random.default_rng(0), Augmentation(scale=(1.2, 0.8)))


def test_crop_dataset_items(synthetic_root):
    ds = load_dataset("synthetic", synthetic_root, "train")
    crops = CropDataset(ds, 64, Augmentation(rotation_deg=20, flip_prob=0.5), seed=1)
    item = crops[3]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype.is_floating_point is False
    assert item["joints"].shape == (14, 2) and item["affine"].shape == (2, 3)
    again = CropDataset(ds, 64, Augmentation(rotation_deg=20, flip_prob=0.5), seed=1)[3]
    assert (again["image"] == item["image"]).all()
    crops.set_epoch(1)
    assert not (crops[3]["image"] == item["image"]).all(), "a new epoch draws a new transform"
