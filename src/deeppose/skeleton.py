"""Skeleton definitions: joint names, PCP limbs, flip pairs, torso diagonals and head segment.

Skeletons are plain data (frozen dataclasses); nothing is registered at import time. Left and right are
the person's own (person-centric), as in LSP, MPII, COCO and FLIC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A PCP limb endpoint is a tuple of joint indices whose mean is the endpoint (one index: the joint itself).
Endpoint = tuple[int, ...]


@dataclass(frozen=True)
class Limb:
    """A limb scored by PCP and drawn on stick figures.

    Attributes:
        name: e.g. "r_upper_arm".
        group: the PCP column it is averaged into, e.g. "upper_arm", "torso", "head".
        a, b: the two endpoints (joint indices, averaged when more than one).
    """

    name: str
    group: str
    a: Endpoint
    b: Endpoint


@dataclass(frozen=True)
class Skeleton:
    """Static description of a keypoint layout.

    Attributes:
        name: short identifier ("lsp14", "mpii16", "coco17", "flic11").
        joints: joint names in annotation order, length K.
        limbs: limbs for PCP and drawing.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        torso: the torso diagonals used for diam(y), in order of preference. DeepPose defines the pose
            diameter as the distance between a shoulder and the hip on the opposite side; the first pair
            is right shoulder to left hip, the second (used when one of the first is unlabelled) is
            left shoulder to right hip.
        head: (a, b) joint indices of the head segment for PCKh, or None where the layout has none.
        bones: extra segments drawn on stick figures that are not PCP limbs (e.g. shoulder line).
    """

    name: str
    joints: tuple[str, ...]
    limbs: tuple[Limb, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    torso: tuple[tuple[int, int], ...]
    head: tuple[int, int] | None
    bones: tuple[tuple[int, int], ...] = field(default=())

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def flip_permutation(self) -> list[int]:
        """Index permutation p such that flipped_joints = joints[p] after mirroring the image."""
        perm = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return perm

    def pcp_groups(self) -> list[str]:
        """PCP groups in first-appearance order."""
        return list(dict.fromkeys(limb.group for limb in self.limbs))

    def index(self, joint_name: str) -> int:
        try:
            return self.joints.index(joint_name)
        except ValueError:
            raise KeyError(f"skeleton {self.name} has no joint {joint_name!r}; joints: {', '.join(self.joints)}") \
                from None


def _limb(name: str, group: str, a: int | Endpoint, b: int | Endpoint) -> Limb:
    return Limb(name, group, (a,) if isinstance(a, int) else a, (b,) if isinstance(b, int) else b)


# Joint order from the LSP README (index 0..13); LSPET uses the same order.
LSP14 = Skeleton(
    name="lsp14",
    joints=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
            "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top"),
    limbs=(
        _limb("r_upper_arm", "upper_arm", 8, 7), _limb("l_upper_arm", "upper_arm", 9, 10),
        _limb("r_lower_arm", "lower_arm", 7, 6), _limb("l_lower_arm", "lower_arm", 10, 11),
        _limb("r_upper_leg", "upper_leg", 2, 1), _limb("l_upper_leg", "upper_leg", 3, 4),
        _limb("r_lower_leg", "lower_leg", 1, 0), _limb("l_lower_leg", "lower_leg", 4, 5),
        # Torso: from the hip midpoint to the neck; head: neck to head top.
        _limb("torso", "torso", (2, 3), 12), _limb("head", "head", 12, 13),
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    torso=((8, 3), (9, 2)),
    head=(12, 13),
    bones=((8, 9), (2, 3), (8, 12), (9, 12)),
)

# MPII order: 0 r_ankle .. 5 l_ankle, 6 pelvis, 7 thorax, 8 upper_neck, 9 head_top, 10 r_wrist .. 15 l_wrist.
MPII16 = Skeleton(
    name="mpii16",
    joints=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
            "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"),
    limbs=(
        _limb("r_upper_arm", "upper_arm", 12, 11), _limb("l_upper_arm", "upper_arm", 13, 14),
        _limb("r_lower_arm", "lower_arm", 11, 10), _limb("l_lower_arm", "lower_arm", 14, 15),
        _limb("r_upper_leg", "upper_leg", 2, 1), _limb("l_upper_leg", "upper_leg", 3, 4),
        _limb("r_lower_leg", "lower_leg", 1, 0), _limb("l_lower_leg", "lower_leg", 4, 5),
        _limb("torso", "torso", 6, 7), _limb("head", "head", 8, 9),
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    torso=((12, 3), (13, 2)),
    head=(8, 9),
    bones=((12, 13), (2, 3), (7, 8), (2, 6), (3, 6), (7, 12), (7, 13)),
)

COCO17 = Skeleton(
    name="coco17",
    joints=("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
            "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"),
    limbs=(
        _limb("r_upper_arm", "upper_arm", 6, 8), _limb("l_upper_arm", "upper_arm", 5, 7),
        _limb("r_lower_arm", "lower_arm", 8, 10), _limb("l_lower_arm", "lower_arm", 7, 9),
        _limb("r_upper_leg", "upper_leg", 12, 14), _limb("l_upper_leg", "upper_leg", 11, 13),
        _limb("r_lower_leg", "lower_leg", 14, 16), _limb("l_lower_leg", "lower_leg", 13, 15),
        _limb("torso", "torso", (11, 12), (5, 6)),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    torso=((6, 11), (5, 12)),
    head=None,  # COCO has no head-top joint, hence no head segment.
    bones=((5, 6), (11, 12), (0, 1), (0, 2), (1, 3), (2, 4)),
)

# FLIC's examples.mat stores 29 joint slots; only these 11 are annotated (0-based slot numbers).
FLIC_SLOTS = (0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16)
FLIC11 = Skeleton(
    name="flic11",
    joints=("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "l_hip", "r_hip", "l_eye",
            "r_eye", "nose"),
    limbs=(
        _limb("r_upper_arm", "upper_arm", 3, 4), _limb("l_upper_arm", "upper_arm", 0, 1),
        _limb("r_lower_arm", "lower_arm", 4, 5), _limb("l_lower_arm", "lower_arm", 1, 2),
        _limb("torso", "torso", (6, 7), (0, 3)),
    ),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 7), (8, 9)),
    torso=((3, 6), (0, 7)),
    head=None,
    bones=((0, 3), (6, 7), (8, 10), (9, 10)),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (LSP14, MPII16, COCO17, FLIC11)}


def get_skeleton(name: str) -> Skeleton:
    """Look a skeleton up by name ("lsp14", "mpii16", "coco17", "flic11")."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {', '.join(SKELETONS)}") from None
