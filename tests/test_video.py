"""Pose on video: the One-Euro filter, tracking people who cross, a synthetic clip end to end, and a corrupt file."""

import json

import cv2
import numpy as np
import pytest

from deeppose.cli import main
from deeppose.serve.track import OneEuro, OneEuroFilter, Tracker, match_boxes


def test_the_one_euro_filter_passes_a_constant_and_damps_jitter():
    f = OneEuroFilter(OneEuro(min_cutoff=1.0, beta=0.0))
    constant = np.array([[10.0, 20.0], [30.0, 40.0]])
    assert all(np.array_equal(f(constant, 1 / 30), constant) for _ in range(20))
    rng = np.random.default_rng(0)
    noisy = 100 + rng.normal(0, 3, (300, 2))
    g = OneEuroFilter(OneEuro(min_cutoff=1.0, beta=0.0))
    smoothed = np.array([g(x, 1 / 30) for x in noisy])
    assert smoothed[50:].std(axis=0).max() < noisy[50:].std(axis=0).min() / 2
    # a step is followed (beta raises the cut-off with speed), with lag when beta is 0
    fast, slow = OneEuroFilter(OneEuro(beta=1.0)), OneEuroFilter(OneEuro(beta=0.0))
    for x in [0.0] * 10 + [100.0] * 5:
        a, b = fast(np.array([x]), 1 / 30), slow(np.array([x]), 1 / 30)
    assert a[0] > b[0] + 10


def _clip(path, frames: int = 12, size: tuple[int, int] = (96, 80)) -> None:
    """A synthetic clip: a bright figure walking across a dark background."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for t in range(frames):
        frame = np.full((size[1], size[0], 3), 30, np.uint8)
        x = 20 + 4 * t
        cv2.line(frame, (x, 15), (x, 50), (220, 220, 220), 5)
        cv2.circle(frame, (x, 12), 6, (220, 220, 220), -1)
        writer.write(frame)
    writer.release()


def test_a_video_gives_a_line_per_frame_and_an_annotated_mp4(tmp_path, tiny_pipeline, capsys):
    _clip(tmp_path / "walk.mp4")
    assert main(["predict", str(tmp_path / "walk.mp4"), "--checkpoint", str(tiny_pipeline), "--out",
                 str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "walk.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(12)) and len(records[0]["joints"]) == 14
    assert records[0]["box_source"] == "found" and {"time", "box", "person_score"} <= set(records[5])
    assert {r["box_source"] for r in records} <= {"found", "tracked"}
    import jsonschema

    from deeppose.serve.records import SCHEMA

    schema = json.loads(SCHEMA.read_text())
    for record in records:
        jsonschema.validate(record, schema)
    written = cv2.VideoCapture(str(tmp_path / "out" / "walk.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert "12 frames" in capsys.readouterr().out


def test_a_corrupt_video_is_a_one_line_error(tmp_path, tiny_pipeline, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x01 not a video")
    assert main(["predict", str(tmp_path / "bad.mp4"), "--checkpoint", str(tiny_pipeline), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bad.mp4: not a readable video (no frame could be decoded)") and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from fixtures import tiny_pipeline as build

    return build(tmp_path_factory.mktemp("pipe"))


def test_a_box_carried_out_of_the_frame_is_looked_for_again(tiny_pipeline):
    from deeppose.serve.predictor import Person, Predictor
    from deeppose.serve.track import Track

    predictor = Predictor.from_checkpoint(tiny_pipeline)
    frame = np.full((80, 96, 3), 40, np.uint8)
    tracker = Tracker(predictor, redetect_every=100)
    tracker(frame, 0.1)
    far = np.full((14, 2), 1000.0)  # the last pose far outside the frame
    tracker.tracks = {7: Track(Person(far, far[None], np.ones(14), np.array([990.0, 990, 20, 20]), "found", 0.9, 1),
                               tracker.frames - 1, np.zeros(2), None)}
    assert tracker(frame, 0.1).box_source == "found"


def test_boxes_are_matched_by_overlap_greedily():
    previous = np.array([[10, 10, 10, 10], [40, 10, 10, 10]], float)
    current = np.array([[41, 10, 10, 10], [200, 200, 5, 5], [11, 10, 10, 10]], float)
    assert match_boxes(previous, current) == {0: 1, 2: 0}
    assert match_boxes(previous, np.zeros((0, 4))) == {}


class ScriptedPeople:
    """A stand-in for the pipeline on a synthetic clip: frame t holds the people of `script[t]` (their boxes,
    [x, y, w, h]), found exactly; where two overlap, only the first is found (as non-maximum suppression keeps one
    of two people on top of each other)."""

    def __init__(self, script):
        from deeppose.models.meta import BoxRule

        self.script, self.t = script, 0
        self.box_rule, self.finder = BoxRule(), object()

    def predict(self, frame):
        from deeppose.serve.predictor import Person, Prediction

        boxes = self.script[self.t]
        self.t += 1
        people = []
        for box in boxes:
            b = np.asarray(box, float)
            joints = np.array([[b[0] + 0.25 * b[2], b[1] + 0.25 * b[3]], [b[0] + 0.75 * b[2], b[1] + 0.75 * b[3]]])
            people.append(Person(joints, joints[None], np.ones(2), b, "found", 0.9, 1))
        return Prediction(people, people[0], True)


def test_two_people_who_cross_keep_their_ids():
    # A walks right, B walks left, on the same line; for 3 frames in the middle they overlap and one is found
    frames = []
    for t in range(21):
        a, b = [10 + 8 * t, 40, 30, 60], [170 - 8 * t, 40, 30, 60]
        frames.append([a] if 9 <= t <= 11 else [a, b])
    tracker = Tracker(ScriptedPeople(frames), redetect_every=1)
    ids = []
    for _ in frames:
        result = tracker(np.zeros((120, 200, 3), np.uint8), 0.1)
        ids.append({p.track_id: p.box[0] for p in result.people})
    assert set(ids[0]) == {0, 1} and tracker.next_id == 2  # nobody new: the hidden person's track waited
    assert ids[0][0] < ids[0][1] and ids[-1][0] > ids[-1][1]  # track 0 (A, left at first) ends on the right
