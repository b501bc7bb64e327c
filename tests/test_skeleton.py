import pytest

from deeppose.skeleton import COCO17, FLIC11, LSP14, MPII16, SKELETONS, get_skeleton


@pytest.mark.parametrize("skeleton", list(SKELETONS.values()), ids=list(SKELETONS))
def test_skeleton_is_consistent(skeleton):
    k = skeleton.num_joints
    perm = skeleton.flip_permutation()
    assert sorted(perm) == list(range(k))
    assert [perm[p] for p in perm] == list(range(k)), "flip must be an involution"
    for left, right in skeleton.flip_pairs:
        a, b = skeleton.joints[left], skeleton.joints[right]
        assert {a[:2], b[:2]} == {"l_", "r_"} and a[2:] == b[2:], (a, b)
    for limb in skeleton.limbs:
        assert all(0 <= i < k for i in limb.a + limb.b)
    for a, b in skeleton.torso:
        assert "shoulder" in skeleton.joints[a] and "hip" in skeleton.joints[b]
        assert skeleton.joints[a][:2] != skeleton.joints[b][:2], "diagonal joins opposite sides"


def test_lsp_layout_matches_the_readme():
    assert LSP14.joints[0] == "r_ankle" and LSP14.joints[8] == "r_shoulder" and LSP14.joints[13] == "head_top"
    assert LSP14.torso[0] == (8, 3)  # DeepPose: right shoulder to left hip
    assert LSP14.pcp_groups() == ["upper_arm", "lower_arm", "upper_leg", "lower_leg", "torso", "head"]
    assert MPII16.head == (8, 9) and COCO17.head is None and FLIC11.num_joints == 11


def test_unknown_skeleton_names_the_known_ones():
    with pytest.raises(KeyError, match="lsp14"):
        get_skeleton("nope")
