import numpy as np

from deeppose.data.synthetic import render_person, write_synthetic


def test_render_is_deterministic_per_seed():
    a = render_person(np.random.default_rng([7, 0, 3]), 96)
    b = render_person(np.random.default_rng([7, 0, 3]), 96)
    c = render_person(np.random.default_rng([7, 0, 4]), 96)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_written_sets_do_not_depend_on_their_size(tmp_path):
    write_synthetic(tmp_path / "small", {"train": 2}, seed=5, size=64, progress=False)
    write_synthetic(tmp_path / "big", {"train": 4, "test": 1}, seed=5, size=64, progress=False)
    for name in ("train_00000.png", "train_00001.png"):
        assert (tmp_path / "small" / "images" / name).read_bytes() == (tmp_path / "big" / "images" / name).read_bytes()


def test_people_are_plausible():
    occluded, inside = 0, 0
    for i in range(40):
        image, joints, visible = render_person(np.random.default_rng(i), 128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        inside += ((joints >= 0) & (joints < 128)).all(axis=1).sum()
        occluded += (~visible).sum()
        # Head above neck, neck above the hips (people stand roughly upright).
        assert joints[13, 1] < joints[12, 1] < joints[[2, 3], 1].mean()
    assert inside > 0.9 * 40 * 14
    assert 0.02 * 40 * 14 < occluded < 0.4 * 40 * 14, "self-occlusion happens, but not to most joints"
