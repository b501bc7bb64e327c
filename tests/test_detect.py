"""The person detector: its training canvases and targets, reading its maps into people (peaks, poses, NMS,
scores), its losses, its MoveNet import, and COCO keypoint AP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeppose.data.mosaic import MAX_PEOPLE, STRIDE, Mosaic, MosaicDataset, centre_cell, gaussian_heat
from deeppose.data.synthetic import load_synthetic
from deeppose.eval.multi_person import MULTI_SIGMAS, keypoint_ap
from deeppose.serve.detect import centre_peaks, read_people, suppress
from deeppose.train.detector import centre_loss, offset_loss

# a photo of data/negatives/test (a cat)
NOBODY_PHOTO = "inet_n02124075_Egyptian_cat.jpg"


def test_peaks_are_local_maxima_above_the_floor_strongest_first():
    z = np.full((12, 12), -5.0)
    z[2, 3], z[8, 8], z[8, 9], z[5, 1] = 3.0, 2.0, 1.0, -1.0  # (8, 9) is next to a stronger cell
    rows, cols = centre_peaks(z, floor=0.0)
    assert list(zip(rows, cols)) == [(2, 3), (8, 8)]
    assert list(zip(*centre_peaks(z, floor=-2.0, limit=2))) == [(2, 3), (8, 8)]
    assert len(centre_peaks(z, floor=-2.0)[0]) == 3


def test_nms_keeps_one_box_per_person():
    a = np.array([[10.0, 10.0], [30.0, 60.0]])
    joints = np.stack([a, a + 1.5, a + [100.0, 0.0]])  # the first two are one person seen twice
    keep = suppress(joints, np.array([0.6, 0.9, 0.5]))
    assert keep.tolist() == [1, 2]


def _perfect_maps(item: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The maps a perfect detector gives for a canvas: its heat as logits, its annotated offsets at each centre."""
    heat = item["heat"].numpy().astype(np.float64)
    logits = np.log(np.clip(heat, 1e-6, 1 - 1e-6) / np.clip(1 - heat, 1e-6, 1))
    offsets = np.zeros((2 * k, *heat.shape))
    for (col, row), d, present in zip(item["cells"].numpy(), item["offsets"].numpy(), item["present"].numpy()):
        if present:
            offsets[:, row, col] = d.reshape(-1)
    return logits, offsets


@pytest.fixture(scope="module")
def canvases(synthetic_root, tmp_path_factory):
    people = load_synthetic(synthetic_root, "train")
    nobody = []
    folder = tmp_path_factory.mktemp("nobody")
    for i in range(3):  # photos with nobody: flat colours
        import cv2

        path = folder / f"{i}.png"
        cv2.imwrite(str(path), np.full((50, 70, 3), 60 * i, np.uint8))
        nobody.append(path)
    return people, nobody


def test_a_mosaic_with_k_people_reads_back_as_k_people_where_they_are(canvases):
    people, nobody = canvases
    k = people.skeleton.num_joints
    data = MosaicDataset(people, nobody, 96, Mosaic(grids=(0.0, 0.5, 0.5), nobody_prob=0.3))
    counts = set()
    for index in range(12):
        item = data[index]
        n = int(item["present"].sum())
        assert item["image"].shape == (3, 96, 96) and item["heat"].shape == (24, 24) and n <= MAX_PEOPLE
        logits, offsets = _perfect_maps(item, k)
        found = read_people(logits, offsets, np.eye(2, 3), 1.0, 0.0, STRIDE, floor=0.5)
        found = found.take(found.scores >= 0.5)
        assert len(found) == n, index
        counts.add(n)
        # each annotated person's joints come back where the canvas has them (canvas pixels, identity affine)
        truth = (item["cells"].numpy()[:n, None, :] + item["offsets"].numpy()[:n]) * STRIDE - 0.5
        for t in truth:
            assert min(np.abs(found.joints - t).max(axis=(1, 2))) < 1e-6
        assert not item["may_hold_people"].numpy().all() or n > 0
    assert len(counts) >= 3  # canvases of several sizes of crowd were drawn


def test_centre_cells_and_heat():
    assert centre_cell(np.array([[1.0, 9.0], [5.4, 9.6]])).tolist() == [[0, 2], [1, 3]]
    heat = gaussian_heat(10, np.array([[2, 3], [7, 7]]), np.array([1.0, 2.0]))
    assert heat[3, 2] == 1.0 and heat[7, 7] == 1.0 and 0 < heat[5, 5] < 1


def test_the_centre_loss_ignores_confident_cells_where_unannotated_people_may_be():
    heat = torch.zeros(1, 8, 8)
    heat[0, 2, 2] = 1.0
    logits = torch.full((1, 1, 8, 8), -4.0)
    logits[0, 0, 6, 6] = 3.0  # a confident peak nobody annotated
    may = torch.zeros(1, 8, 8, dtype=torch.bool)
    in_photo_of_people = centre_loss(logits, heat, may | True, ignore_above=0.3)
    in_photo_of_nobody = centre_loss(logits, heat, may, ignore_above=0.3)
    assert in_photo_of_nobody > in_photo_of_people + 1.0  # the peak is only punished where nobody can be
    logits[0, 0, 2, 2] = 4.0
    assert centre_loss(logits, heat, may, 0.3) < in_photo_of_nobody


def test_the_offset_loss_reads_each_person_at_their_centre():
    offsets = torch.zeros(1, 4, 6, 6)
    offsets[0, :, 1, 4] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    cells = torch.tensor([[[4, 1], [0, 0]]])
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[9.0, 9.0], [9.0, 9.0]]]])
    weight = torch.ones(1, 2, 2, dtype=torch.bool)
    assert offset_loss(offsets, cells, target, weight, torch.tensor([[True, False]])) == 0.0
    assert offset_loss(offsets, cells, target, weight, torch.tensor([[True, True]])) > 0.0


def test_keypoint_ap_is_one_for_the_truth_and_drops_when_joints_move():
    gt = {"images": [{"id": 1, "width": 200, "height": 200}],
          "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(12)]}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [20, 20, 80, 150],
                           "area": 8000.0, "num_keypoints": 12,
                           "keypoints": [v for i in range(12) for v in (30 + 5 * i, 30 + 10 * i, 2)]}]}
    kp = np.array(gt["annotations"][0]["keypoints"], float).reshape(12, 3)
    perfect = [{"image_id": 1, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9}]
    assert keypoint_ap(gt, perfect, MULTI_SIGMAS)["ap"] == pytest.approx(1.0)
    moved = kp.copy()
    moved[:, :2] += 12
    worse = keypoint_ap(gt, [{**perfect[0], "keypoints": moved.ravel().tolist()}], MULTI_SIGMAS)["ap"]
    assert worse < 0.9
    assert keypoint_ap(gt, [], MULTI_SIGMAS)["ap"] == 0.0


@pytest.mark.shared_data
def test_the_imported_movenet_detector_finds_the_people_of_a_team_photo(multi_root, movenet):
    """MoveNet's centre and regression branches, imported: several people of a data/multi photo found, each box
    holding an annotated person."""
    from deeppose.data.io import load_json, read_image
    from deeppose.geometry import centre_box
    from deeppose.models.movenet_import import import_movenet_detector
    from deeppose.serve.backend import TorchNetworks
    from deeppose.serve.finder import DetectorFinder

    detector, meta = import_movenet_detector(movenet, 192)
    finder = DetectorFinder(TorchNetworks(torch.nn.Identity(), detector), meta)
    gt = load_json(multi_root / "annotations.json")
    image = next(i for i in gt["images"] if i["file_name"] == "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg")
    people = finder([read_image(multi_root / "images" / image["file_name"])])[0]
    people = people.take(people.scores >= 0.5)
    truth = [centre_box(*a["bbox"]) for a in gt["annotations"] if a["image_id"] == image["id"]]
    assert len(people) == len(truth) == 3
    for t in truth:  # each annotated person's centre is inside a found box of about their size
        assert any((np.abs(t[:2] - b[:2]) < b[2:] / 2).all() and 0.5 < b[2] / max(t[2:]) < 3 for b in people.boxes)


def _mosaic(photos: list, side: int = 384) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 2 x 2 canvas of whole photos (squared into tiles, the rest black) and each tile's annotated joints there."""
    from deeppose.data.io import read_image
    from deeppose.geometry import augmentation_matrix, square_box, transform_points, warp_image, whole_image_box

    canvas, tile, joints = np.zeros((side, side, 3), np.uint8), side // 2, []
    for k, sample in enumerate(photos):
        image = read_image(sample.image_path)
        a = augmentation_matrix(square_box(whole_image_box(image.shape[1], image.shape[0])), (tile, tile))
        ox, oy = (k % 2) * tile, (k // 2) * tile
        canvas[oy:oy + tile, ox:ox + tile] = warp_image(image, a, (tile, tile))
        joints.append(transform_points(a, sample.joints.astype(np.float64)) + [ox, oy])
    return canvas, joints


@pytest.mark.shared_data
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_the_shipped_model_finds_k_people_on_a_mosaic_of_k_photos(lsp_root, k):
    """LSP test photos (one person each) tiled on a canvas: k people found, one per tile, each where its
    annotated person is."""
    from deeppose.data.registry import load_dataset
    from deeppose.paths import default_model
    from deeppose.serve.predictor import Predictor

    test = load_dataset("lsp", lsp_root, "test")
    canvas, truth = _mosaic([test.samples[i] for i in (3, 40, 77, 120)[:k]])
    result = Predictor.from_checkpoint(default_model()).predict(canvas)
    assert len(result.people) == k and result.person_found
    for joints in truth:  # each person's pose is found once, near the annotation (within a fifth of its size)
        size = np.ptp(joints, axis=0).max()
        errors = [np.median(np.linalg.norm(p.joints - joints, axis=1)) / size for p in result.people]
        assert sorted(errors)[0] < 0.2 and sorted(errors)[1 if k > 1 else 0] > (0.5 if k > 1 else 0)


@pytest.mark.shared_data
def test_a_photo_with_nobody_gives_no_people_and_one_line(negatives_root, tmp_path, capsys):
    import json

    import jsonschema

    from deeppose.cli import main
    from deeppose.serve.records import SCHEMA

    photo = negatives_root / "test" / NOBODY_PHOTO
    assert main(["predict", str(photo), "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if photo.name in line]
    assert len(lines) == 1 and "nobody found" in lines[0]  # one line for the photo (then the run's summary)
    record = json.loads((tmp_path / "out" / f"{photo.name}.json").read_text())
    jsonschema.validate(record, json.loads(SCHEMA.read_text()))
    assert record["people"] == [] and record["person_found"] is False and record["schema_version"] == 2


@pytest.mark.shared_data
def test_everyone_in_a_team_photo_and_the_deprecated_fields_are_the_best_persons(multi_root, tmp_path, capsys):
    import json

    import jsonschema

    from deeppose.cli import main
    from deeppose.serve.records import SCHEMA

    photo = multi_root / "images" / "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"
    assert main(["predict", str(photo), "--out", str(tmp_path / "all")]) == 0
    assert main(["predict", str(photo), "--out", str(tmp_path / "one"), "--max-people", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if photo.name in line]
    every = json.loads((tmp_path / "all" / f"{photo.name}.json").read_text())
    one = json.loads((tmp_path / "one" / f"{photo.name}.json").read_text())
    jsonschema.validate(every, json.loads(SCHEMA.read_text()))
    n = len(every["people"])
    assert n >= 2 and f"{n} people found" in lines[0] and "1 person found" in lines[1]  # 3 footballers in view
    assert one["people"] == every["people"][:1]
    scores = [p["person_score"] for p in every["people"]]
    assert scores == sorted(scores, reverse=True)  # best first
    best = every["people"][0]
    assert {k: every[k] for k in ("box", "box_source", "person_score", "passes", "joints")} == \
        {k: best[k] for k in ("box", "box_source", "person_score", "passes", "joints")}


def test_the_person_score_weighs_the_finders_logit_and_the_pose_confidence():
    from deeppose.serve.detect import person_probability
    from deeppose.serve.localize import presence_probability
    from deeppose.train.detector_tune import fit_person_score

    logits, confidence = np.array([-1.0, 0.5, 2.0]), np.array([[0.9, 0.8], [0.1, 0.2], [np.nan, np.nan]])
    assert np.allclose(person_probability(logits, confidence, 2.0, -0.5, 0.0), presence_probability(logits, 2.0, -0.5))
    same_logit = person_probability(np.array([0.5, 0.5]), confidence[:2], 1.0, 0.0, 2.0)
    assert same_logit[0] > 0.5 > same_logit[1]  # the same centre, a confident pose against a poor one
    # photos of people: confident poses, logits anywhere; photos of nobody: poor poses, the same logits
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, 400)
    conf = np.concatenate([rng.uniform(0.5, 0.9, 200), rng.uniform(0.02, 0.2, 200)])
    labels = np.concatenate([np.ones(200), np.zeros(200)])
    cal = fit_person_score(np.stack([z, conf], axis=1), labels)
    assert cal["c"] > 1.0 and abs(cal["a"]) < cal["c"]  # the pose confidence is what tells them apart
    found = person_probability(z, conf[:, None], cal["a"], cal["b"], cal["c"]) >= 0.5
    assert found[:200].mean() > 0.95 and found[200:].mean() < 0.05


def test_mined_photos_come_back_more_often(canvases, tmp_path):
    """Hard-negative mining: a mining file's scores weigh how often each photo with nobody is drawn."""
    import json

    from deeppose.errors import DeepPoseError
    from deeppose.train.detector import mined_weights

    people, nobody = canvases
    mined = tmp_path / "hard.json"
    mined.write_text(json.dumps({"detector": "x.pt", "photos": {p.name: s for p, s in zip(nobody, (0.9, 0.0, 0.1))}}))
    w = mined_weights(mined, nobody, hard_share=0.5)
    assert np.allclose(w, [0.5 * 0.9 + 0.5 / 3, 0.5 / 3, 0.5 * 0.1 + 0.5 / 3]) and np.isclose(w.sum(), 1.0)
    with pytest.raises(DeepPoseError, match="hard.json: not a mining file"):
        mined_weights(mined, [*nobody, tmp_path / "other.png"], 0.5)
    data = MosaicDataset(people, nobody, 96, Mosaic(grids=(1.0, 0.0, 0.0), nobody_prob=1.0), nobody_weights=w)
    means = [float(data[i]["image"].float().mean()) for i in range(60)]  # the photos are flat: 0, 60 and 120
    drawn = np.bincount(np.rint(np.array(means) / 60).astype(int).clip(0, 2), minlength=3)
    assert drawn[0] > drawn[1] and drawn[0] > drawn[2]
