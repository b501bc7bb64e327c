import json

import numpy as np
import pytest
import scipy.io
from fixtures import coco_folder, flic_folder, lsp_folder, lspet_folder, write_images

from deeppose.data import load_dataset
from deeppose.data.check import render_sheet, summarize
from deeppose.errors import DeepPoseError
from deeppose.skeleton import LSP14


def test_lsp_format_flags_mean_occluded(tmp_path):
    joints = lsp_folder(tmp_path, n=4)
    ds = load_dataset("lsp", tmp_path, "all")
    assert len(ds) == 4 and ds.skeleton is LSP14
    assert ds.labelled().all(), "LSP labels every joint, occluded ones included"
    assert not ds.visible()[2, 2] and ds.visible()[2, 3]  # image 3 has flag 1 (occluded) on joint 2
    np.testing.assert_allclose(ds[1].joints, joints[:2, :, 1].T, rtol=1e-6)
    assert ds[0].image_path.name == "im0001.jpg"


def test_lsp_standard_split_needs_2000_images(tmp_path):
    lsp_folder(tmp_path, n=4)
    with pytest.raises(DeepPoseError, match="standard train split needs images 1-1000"):
        load_dataset("lsp", tmp_path, "train")


def test_lspet_masks_junk_and_names_images_by_id(tmp_path):
    lspet_folder(tmp_path, ids=[401, 402, 405])
    ds = load_dataset("lspet", tmp_path, "all")
    assert [s.image_id for s in ds] == ["im00401", "im00402", "im00405"]
    assert not ds[0].labelled[5] and not ds[2].labelled[0] and ds.labelled().sum() == 14 * 3 - 2
    assert (ds[0].joints[5] == 0).all(), "junk coordinates are not kept"
    assert (ds.visible() == ds.labelled()).all()


def test_lspet_without_image_ids_counts_from_one(tmp_path):
    lspet_folder(tmp_path, ids=None)
    assert [s.image_id for s in load_dataset("lspet", tmp_path)] == ["im00001", "im00002", "im00003"]


def test_wrong_layout_names_the_right_loader(tmp_path):
    lspet_folder(tmp_path)
    with pytest.raises(DeepPoseError, match=r"joints.mat: 'joints' has shape \(14, 3, 3\).*--dataset lspet"):
        load_dataset("lsp", tmp_path, "all")


def test_mat_without_joints(tmp_path):
    scipy.io.savemat(tmp_path / "joints.mat", {"other": np.zeros(3)})
    with pytest.raises(DeepPoseError, match="no variable 'joints' \\(found: other\\)"):
        load_dataset("lsp", tmp_path, "all")


def test_corrupt_mat_and_missing_folder(tmp_path):
    (tmp_path / "joints.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DeepPoseError, match="not a readable MATLAB file"):
        load_dataset("lspet", tmp_path)
    with pytest.raises(DeepPoseError, match="LSP folder not found"):
        load_dataset("lsp", tmp_path / "nowhere", "test")


def test_nan_coordinates_fail_or_are_skipped_and_counted(tmp_path):
    joints = lsp_folder(tmp_path, n=3)
    joints[0, 4, 1] = np.nan
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    with pytest.raises(DeepPoseError,
                       match=r"joints.mat: im0002: NaN or infinite coordinate for labelled joint\(s\) \[4\]"):
        load_dataset("lsp", tmp_path, "all")
    ds = load_dataset("lsp", tmp_path, "all", on_bad="skip")
    assert len(ds) == 2 and len(ds.skipped) == 1 and "NaN" in ds.skipped[0].reason
    assert summarize(ds, verify=False)["n_skipped"] == 1


def test_missing_and_corrupt_images(tmp_path):
    lsp_folder(tmp_path, n=3)
    (tmp_path / "images" / "im0002.jpg").unlink()
    with pytest.raises(DeepPoseError, match="im0002.jpg: image file not found"):
        load_dataset("lsp", tmp_path, "all")
    ds = load_dataset("lsp", tmp_path, "all", on_bad="skip")
    assert len(ds) == 2 and ds.skipped[0].path.endswith("im0002.jpg")
    data = (tmp_path / "images" / "im0003.jpg").read_bytes()
    (tmp_path / "images" / "im0003.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    with pytest.raises(DeepPoseError, match="im0003.jpg: corrupt image"):
        summarize(ds, verify=True, progress=False)


def test_empty_split(tmp_path):
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(DeepPoseError, match="has no samples"):
        load_dataset("custom", tmp_path, "all")


def test_coco_single_person_samples(tmp_path):
    coco_folder(tmp_path)
    ds = load_dataset("coco", tmp_path, "val")
    assert len(ds) == 1, "crowd and keypoint-less annotations are not samples"
    s = ds[0]
    assert not s.labelled[16] and s.labelled.sum() == 16
    assert s.visible[1] and not s.visible[0]  # v=2 visible, v=1 labelled but occluded
    np.testing.assert_allclose(s.box, [25, 25, 40, 30])
    direct = load_dataset("coco", tmp_path / "annotations" / "person_keypoints_val2017.json")
    assert direct[0].image_path == s.image_path


def test_flic_examples_mat(tmp_path):
    flic_folder(tmp_path)
    train, test = load_dataset("flic", tmp_path, "train"), load_dataset("flic", tmp_path, "test")
    assert len(train) == 2 and len(test) == 1 and train.skeleton.num_joints == 11
    assert train.labelled().all()
    np.testing.assert_allclose(test[0].joints[0], [2, 13])  # slot 0 = l_shoulder, (x, y) = (0 + 2, 11 + 2)
    np.testing.assert_allclose(test[0].box, [20, 25, 20, 40])


def test_mpii_fixture_layout(tmp_path):
    write_images(tmp_path / "images", ["a.jpg"], size=(100, 80))
    joints = [[10.0 + k, 20.0] for k in range(16)]
    vis = [1] * 16
    vis[3] = 0
    entry = {"image": "a.jpg", "center": [50, 40], "scale": 0.3, "joints": joints, "joints_vis": vis}
    (tmp_path / "annotations.json").write_text(json.dumps([entry]))
    ds = load_dataset("mpii", tmp_path, "all")
    assert ds[0].labelled.sum() == 15 and ds.skeleton.head == (8, 9)
    np.testing.assert_allclose(ds[0].box, [50, 40, 60, 60])
    entry["joints"] = joints[:14]
    (tmp_path / "annotations.json").write_text(json.dumps([entry]))
    with pytest.raises(DeepPoseError, match="expected joints 16x2"):
        load_dataset("mpii", tmp_path, "all")


def test_custom_json_and_csv_agree(tmp_path):
    write_images(tmp_path / "img", ["p.jpg"], size=(50, 50))
    joints = [[1.0 + k, 2.0 + k, [0, 1, 2][k % 3]] for k in range(14)]
    (tmp_path / "people.json").write_text(json.dumps({"skeleton": "lsp14", "samples": [
        {"image": "img/p.jpg", "joints": joints, "box": [25, 25, 40, 40], "split": "test"}]}))
    header = ["image"] + [f"{j}_{c}" for j in LSP14.joints for c in "xyv"] + ["box_cx", "box_cy", "box_w", "box_h"]
    row = ["img/p.jpg"] + [str(v) for jt in joints for v in jt] + ["25", "25", "40", "40"]
    (tmp_path / "people.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    a = load_dataset("custom", tmp_path / "people.json", "test")
    b = load_dataset("custom", tmp_path / "people.csv", "all")
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.joints, t.joints)
        np.testing.assert_array_equal(s.labelled, t.labelled)
        np.testing.assert_array_equal(s.visible, t.visible)
        np.testing.assert_array_equal(s.box, t.box)
    assert a[0].labelled.sum() == 9 and a[0].visible.sum() == 4
    with pytest.raises(DeepPoseError, match="has no samples"):
        load_dataset("custom", tmp_path / "people.json", "train")


def test_synthetic_summary_and_sheet(synthetic_root, tmp_path):
    ds = load_dataset("synthetic", synthetic_root, "train")
    summary = summarize(ds, progress=False)
    assert summary["n_samples"] == 48 and summary["image_width"] == {"min": 96, "max": 96}
    assert 0.6 < summary["visible_fraction"] < 1.0, "self-occlusion hides some joints, not most"
    sheet = render_sheet(ds, tmp_path / "sheet.png", n=6)
    assert sheet.is_file() and sheet.stat().st_size > 1000


@pytest.mark.shared_data
@pytest.mark.parametrize("split, visible", [("train", 0.9289), ("test", 0.9249)])
def test_real_lsp_counts(lsp_root, split, visible):
    ds = load_dataset("lsp", lsp_root, split)
    s = summarize(ds, verify=False)
    assert s["n_samples"] == 1000 and s["labelled_fraction"] == 1.0
    assert s["visible_fraction"] == pytest.approx(visible, abs=5e-4)
    assert ds[0].image_id == ("im0001" if split == "train" else "im1001")
    np.testing.assert_allclose(load_dataset("lsp", lsp_root, "train")[0].joints[0], [29.746, 143.345], atol=1e-3)


@pytest.mark.shared_data
def test_real_lspet_counts(lspet_root):
    s = summarize(load_dataset("lspet", lspet_root, "all"), verify=False)
    assert s["n_samples"] == 9600 and s["all_labelled_images"] == 3804
    assert len(load_dataset("lspet", lspet_root)) == 9100  # "train", the default: all but the 500 held out
    assert s["visible_fraction"] == pytest.approx(118347 / 134400, abs=1e-6)


@pytest.mark.shared_data
def test_real_mpii_counts(mpii_root):
    s = summarize(load_dataset("mpii", mpii_root, "all"))
    assert s["n_samples"] == 5 and s["n_joints"] == 80 and s["joints_out_of_bounds"] == 0
    assert s["labelled_fraction"] == pytest.approx(76 / 80)


def test_a_coco_file_naming_lsp_joints_loads_into_lsp14(tmp_path):
    write_images(tmp_path / "images", ["a.jpg"], size=(80, 60))
    names = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
             "l_shoulder", "l_elbow", "l_wrist"]
    kps = [v for k in range(12) for v in (10.0 + k, 5.0 + k, 2 if k else 0)]
    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "keypoints": names}],
            "annotations": [{"id": 3, "image_id": 1, "bbox": [1, 2, 30, 40], "keypoints": kps, "num_keypoints": 11}]}
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = load_dataset("multi", tmp_path, "test")
    assert ds.name == "multi" and ds.skeleton is LSP14 and len(ds) == 1
    s = ds.samples[0]
    assert s.labelled.tolist() == [False] + [True] * 11 + [False, False]  # neck, head top: not in the file
    assert s.joints[LSP14.index("l_wrist")].tolist() == [21.0, 16.0]
    data["categories"][0]["keypoints"] = ["tail"] + names[1:]
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DeepPoseError, match="neither COCO's 17 nor LSP joints"):
        load_dataset("multi", tmp_path, "test")


@pytest.mark.shared_data
def test_real_multi_counts(shared_data):
    ds = load_dataset("multi", shared_data / "multi", "test")
    assert len(ds) == 54 and ds.labelled()[:, :12].sum() > 500 and not ds.labelled()[:, 12:].any()
