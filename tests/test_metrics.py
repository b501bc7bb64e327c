import numpy as np
import pytest

from deeppose.eval.metrics import joint_errors, pck, pckh, pcp, pdj
from deeppose.skeleton import LSP14, MPII16


def _pose() -> np.ndarray:
    """An LSP pose whose torso diagonal (r_shoulder 8 -> l_hip 3) is exactly 50 px (a 30-40-50 triangle)."""
    y = np.zeros((14, 2))
    y[8], y[3] = (0.0, 0.0), (30.0, 40.0)
    y[9], y[2] = (30.0, 0.0), (0.0, 40.0)
    y[7], y[6] = (0.0, 10.0), (0.0, 20.0)  # right upper arm 10 px, lower arm 10 px
    y[10], y[11] = (30.0, 10.0), (30.0, 20.0)
    y[1], y[0] = (0.0, 60.0), (0.0, 80.0)  # right upper leg 20 px, lower leg 20 px
    y[4], y[5] = (30.0, 60.0), (30.0, 80.0)
    y[12], y[13] = (15.0, -5.0), (15.0, -25.0)  # head segment 20 px
    return y


def test_pdj_hand_computed():
    gt = _pose()[None]
    pred = gt.copy()
    pred[0, 0] += (9.0, 0.0)   # within 0.2 * 50 = 10 px
    pred[0, 1] += (0.0, 11.0)  # beyond 10 px, within 0.25 * 50
    labelled = np.ones((1, 14), bool)
    out = pdj(pred, gt, labelled, LSP14, alphas=np.array([0.0, 0.1, 0.2, 0.25]))
    np.testing.assert_allclose(out["mean"], [12 / 14, 12 / 14, 13 / 14, 1.0])
    assert out["per_joint"]["r_ankle"] == [0.0, 0.0, 1.0, 1.0]
    assert out["pck"]["0.2"] == pytest.approx(13 / 14)
    assert out["n_joints"] == 14 and out["n_images"] == 1 and out["n_images_excluded"] == 0
    assert pck(pred, gt, labelled, LSP14, 0.2) == pytest.approx(13 / 14)


def test_pdj_falls_back_to_the_other_diagonal_and_excludes_images_without_torso():
    gt = np.stack([_pose(), _pose(), _pose()])
    labelled = np.ones((3, 14), bool)
    labelled[1, 3] = False  # image 1: left hip unlabelled -> l_shoulder (30,0) to r_hip (0,40) = 50 px too
    gt[1, 2] = (0.0, 80.0)  # ... make that diagonal 30-80 long: sqrt(30^2 + 80^2)
    labelled[2, [3, 2]] = False  # image 2: neither diagonal
    pred = gt.copy()
    pred[1, 0] += (0.0, 12.0)  # 12 px: missed at 0.2 * 50 = 10, detected at 0.2 * 85.4 = 17.1
    out = pdj(pred, gt, labelled, LSP14, alphas=np.array([0.2]))
    assert out["n_images"] == 2 and out["n_images_excluded"] == 1
    assert out["n_joints"] == 14 + 13  # image 1 scores its 13 labelled joints, image 2 none
    assert out["mean"][0] == pytest.approx(1.0)


def test_pdj_auc_and_non_finite_predictions():
    gt = _pose()[None]
    labelled = np.ones((1, 14), bool)
    assert pdj(gt, gt, labelled, LSP14)["auc"] == pytest.approx(1.0)
    pred = gt.copy()
    pred[0, 5] = np.nan
    assert pdj(pred, gt, labelled, LSP14)["pck"]["0.5"] == pytest.approx(13 / 14)
    assert np.isinf(joint_errors(pred, gt)[0, 5])


def test_pcp_strict_and_loose_hand_computed():
    gt = _pose()[None]
    pred = gt.copy()
    pred[0, 8] += (0.0, 4.0)   # r_shoulder off by 4 (<= 5 = half the upper arm)
    pred[0, 7] += (6.0, 0.0)   # r_elbow off by 6 (> 5): r_upper_arm strict fails, loose (mean 5) passes
    labelled = np.ones((1, 14), bool)
    strict = pcp(pred, gt, labelled, LSP14, strict=True)
    loose = pcp(pred, gt, labelled, LSP14, strict=False)
    assert strict["per_limb"]["r_upper_arm"] == 0.0 and loose["per_limb"]["r_upper_arm"] == 1.0
    # r_lower_arm: elbow 6 px off, wrist exact: strict fails, loose (mean 3 <= 5) passes.
    assert strict["per_limb"]["r_lower_arm"] == 0.0 and loose["per_limb"]["r_lower_arm"] == 1.0
    assert strict["per_group"]["upper_arm"] == 0.5 and strict["per_group"]["lower_arm"] == 0.5
    assert strict["per_group"]["upper_leg"] == 1.0
    assert strict["mean"] == pytest.approx((0.5 + 0.5 + 1.0 + 1.0) / 4)
    assert strict["n_limbs"]["r_upper_arm"] == 1 and strict["n_images"] == 1


def test_pcp_skips_unlabelled_limbs_and_handles_zero_length():
    gt = _pose()[None].repeat(2, axis=0)
    gt[:, 7] = gt[:, 8]  # zero-length right upper arm
    labelled = np.ones((2, 14), bool)
    labelled[1, 10] = False  # image 1: left elbow unlabelled -> both left arm limbs unscored
    pred = gt.copy()
    pred[1, 7] += (0.5, 0.0)
    out = pcp(pred, gt, labelled, LSP14)
    assert out["per_limb"]["r_upper_arm"] == 0.5  # exact prediction passes a zero-length limb, 0.5 px off fails
    assert out["n_limbs"]["l_upper_arm"] == 1 and out["n_limbs"]["r_upper_arm"] == 2


def test_pckh_uses_the_head_segment():
    gt = _pose()[None]
    pred = gt.copy()
    pred[0, 0] += (9.9, 0.0)  # head segment 20 px -> threshold 10
    pred[0, 1] += (10.1, 0.0)
    out = pckh(pred, gt, np.ones((1, 14), bool), LSP14)
    assert out["pckh"] == pytest.approx(13 / 14) and out["n_joints"] == 14
    with pytest.raises(ValueError, match="no head segment"):
        from deeppose.skeleton import COCO17
        pckh(np.zeros((1, 17, 2)), np.zeros((1, 17, 2)), np.ones((1, 17), bool), COCO17)
    gt16 = np.zeros((1, 16, 2))
    lab = np.ones((1, 16), bool)
    lab[0, 9] = False  # no head top: image excluded
    assert pckh(gt16, gt16, lab, MPII16)["n_images_excluded"] == 1


def test_metrics_reject_bad_shapes_and_empty_sets():
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        pdj(np.zeros((2, 14, 3)), np.zeros((2, 14, 3)), np.ones((2, 14), bool), LSP14)
    with pytest.raises(ValueError, match="no images"):
        pcp(np.zeros((0, 14, 2)), np.zeros((0, 14, 2)), np.ones((0, 14), bool), LSP14)


def test_confidence_report_ranks_right_joints_above_wrong_ones():
    from deeppose.eval.metrics import confidence_report
    from deeppose.skeleton import get_skeleton

    skeleton = get_skeleton("lsp14")
    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 150, (40, 14, 2))
    gt[:, 8], gt[:, 3] = (60.0, 60.0), (60.0, 160.0)  # shoulder and hip: torso diameters of 100 px
    gt[:, 9], gt[:, 2] = (140.0, 60.0), (140.0, 160.0)
    labelled = np.ones((40, 14), bool)
    pred = gt.copy()
    wrong = rng.random((40, 14)) < 0.3
    pred[wrong] += 50.0  # 70 px off: wrong at PCK@0.2 (20 px)
    honest = confidence_report(pred, np.where(wrong, 0.1, 0.9), gt, labelled, skeleton)
    assert honest["auroc"] == 1.0 and honest["n_joints"] == 560
    assert honest["pck_of_most_confident"]["0.5"] == 1.0
    assert np.isclose(honest["pck_of_most_confident"]["1"], 1 - wrong.mean())
    liar = confidence_report(pred, np.where(wrong, 0.9, 0.1), gt, labelled, skeleton)
    assert liar["auroc"] == 0.0
    flat = confidence_report(pred, np.full((40, 14), 0.5), gt, labelled, skeleton)
    assert flat["auroc"] == 0.5  # ties count half
    assert confidence_report(pred, np.full((40, 14), np.nan), gt, labelled, skeleton) is None
    with pytest.raises(ValueError, match="confidence must be"):
        confidence_report(pred, np.ones((40, 13)), gt, labelled, skeleton)
