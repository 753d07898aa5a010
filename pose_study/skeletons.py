"""Skeletons as data: joint names, parents, flip pairs, bones, and maps into the canonical set.

Every dataset is stored in one canonical joint set, ``CANONICAL`` (the 17 standard Human3.6M
joints, in the order of ``reference/datasets.md`` §9.2). A joint that a dataset does not annotate
is *masked*, never fabricated: its entry in the index map is ``-1``.

Each native skeleton carries ``to_canonical``: for every canonical joint, the index of the same
anatomical point in the native order, or ``-1``. ``≈`` correspondences from §9 (e.g. MPII
upper_neck ≈ H36M neck) are mapped; midpoints a dataset does not annotate are not.

Left/right are person-centric everywhere (left = the person's left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A joint set.

    Attributes:
        name: Identifier stored in HDF5 ``skeleton`` attributes, e.g. ``"mpii16"``.
        joints: Joint names in native order.
        parents: Parent index per joint (``-1`` for the root).
        flip_pairs: Index pairs that swap under a horizontal flip.
        to_canonical: For each ``CANONICAL`` joint, the native index, or ``-1`` if absent.
            Empty for ``CANONICAL`` itself.
    """

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    to_canonical: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        assert len(self.parents) == len(self.joints), self.name
        for a, b in self.flip_pairs:
            assert 0 <= a < len(self.joints) and 0 <= b < len(self.joints), self.name

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) index pairs, one per non-root joint with a parent."""
        return tuple((j, p) for j, p in enumerate(self.parents) if p >= 0)

    def index(self, joint: str) -> int:
        """Index of a joint by name; ``ValueError`` naming the choices if unknown."""
        if joint not in self.joints:
            raise ValueError(f"joint {joint!r} is not in skeleton {self.name!r}; choices: {self.joints}")
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """Permutation ``perm`` such that ``flipped[..., j, :] = x[..., perm[j], :]`` swaps L/R."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


# --- the canonical joint set: Human3.6M-17, standard order ----------------------------------------

CANONICAL = Skeleton(
    name="h36m17",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine",
        "neck", "nose", "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    flip_pairs=((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)),
)
ROOT = 0  # pelvis: root for root-relative 3D (H36M protocol)

# --- 2D datasets ----------------------------------------------------------------------------------

MPII16 = Skeleton(
    name="mpii16",
    joints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    parents=(1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    to_canonical=(6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10),
)

LSP14 = Skeleton(
    name="lsp14",
    joints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
        "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
    ),
    parents=(1, 2, 12, 12, 3, 4, 7, 8, 12, 12, 9, 10, -1, 12),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    to_canonical=(-1, 2, 1, 0, 3, 4, 5, -1, 12, -1, 13, 9, 10, 11, 8, 7, 6),
)

FLIC11 = Skeleton(
    # The 11 labelled FLIC parts, in MODEC part-id order (ids 1-7, 10, 13, 14, 17).
    name="flic11",
    joints=(
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
        "l_hip", "r_hip", "l_eye", "r_eye", "nose",
    ),
    parents=(-1, 0, 1, 0, 3, 4, 0, 3, 10, 10, 0),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 7), (8, 9)),
    to_canonical=(-1, 7, -1, -1, 6, -1, -1, -1, -1, 10, -1, 0, 1, 2, 3, 4, 5),
)
FLIC_COLUMNS = (0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16)  # 0-based ``coords`` column of each FLIC11 joint

COCO17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
        "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
    ),
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    to_canonical=(-1, 12, 14, 16, 11, 13, 15, -1, -1, 0, -1, 5, 7, 9, 6, 8, 10),
)

# --- 3D datasets ----------------------------------------------------------------------------------

H36M17 = Skeleton(
    name="h36m17_native",
    joints=CANONICAL.joints,
    parents=CANONICAL.parents,
    flip_pairs=CANONICAL.flip_pairs,
    to_canonical=tuple(range(17)),
)

# The 17 standard joints are these rows of the 32-joint CDF ``Pose`` layout.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# SPIN/mesh-regressor H36M order lists the left leg first: this maps it to standard order.
H36M_SPIN_TO_STANDARD = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)

MPI3DHP28 = Skeleton(
    name="mpi3dhp28",
    joints=(
        "spine3", "spine4", "spine2", "spine", "pelvis", "neck", "head", "head_top",
        "l_clavicle", "l_shoulder", "l_elbow", "l_wrist", "l_hand", "r_clavicle", "r_shoulder",
        "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee", "l_ankle", "l_foot", "l_toe",
        "r_hip", "r_knee", "r_ankle", "r_foot", "r_toe",
    ),
    # spine chain pelvis(4) -> spine(3) -> spine2(2) -> spine3(0) -> spine4(1) -> neck(5) -> head ...
    parents=(2, 0, 3, 4, -1, 1, 5, 6, 1, 8, 9, 10, 11, 1, 13, 14, 15, 16, 4, 18, 19, 20, 21,
             4, 23, 24, 25, 26),
    flip_pairs=((8, 13), (9, 14), (10, 15), (11, 16), (12, 17), (18, 23), (19, 24), (20, 25),
                (21, 26), (22, 27)),
    to_canonical=(4, 23, 24, 25, 18, 19, 20, 3, 5, 6, 7, 9, 10, 11, 14, 15, 16),
)

MPI3DHP_TEST17 = Skeleton(
    name="mpi3dhp_test17",
    joints=(
        "head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
        "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head",
    ),
    parents=(16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    to_canonical=(14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4),
)

OCCLUSION_PERSON15 = Skeleton(
    name="occlusion_person15",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "belly", "neck",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 10, 8, 12, 13),
    flip_pairs=((1, 4), (2, 5), (3, 6), (9, 12), (10, 13), (11, 14)),
    to_canonical=(0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, 9, 10, 11, 12, 13, 14),
)

# The points the CMU converter reads from the CMU Graphics Lab BVH conversion; their BVH joint
# names are ``convert.mocap.CMU_BVH_NAMES``. Mapping into CANONICAL (``≈`` as §9): pelvis = Hips
# (the root, between the hip joints); hips/knees/ankles = (Left|Right)UpLeg/Leg/Foot;
# spine ≈ Spine (top of CMU's lower-back segment, the thoraco-lumbar level of H36M's spine joint);
# neck ≈ Neck (top of CMU's thorax segment, base of the neck, like H36M's thorax "neck");
# head = Head (top of the neck, skull base: no canonical joint); head_top ≈ the End Site of Head
# (the crown); shoulders/elbows/wrists = Arm/ForeArm/Hand. nose: no such point, masked.
CMU_BVH17 = Skeleton(
    name="cmu_bvh17",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "neck", "head",
        "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    flip_pairs=((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)),
    to_canonical=(0, 1, 2, 3, 4, 5, 6, 7, 8, -1, 10, 11, 12, 13, 14, 15, 16),
)

# The 22 SMPL-H body joints (AMASS), in SMPL order; hand joints 22-51 are not read. Mapping:
# pelvis, hips, knees, ankles, shoulders, elbows, wrists: same names; spine ≈ spine2 (mid-torso,
# like H36M's spine); neck ≈ neck (base of the neck). SMPL's "head" joint is the head's rotation
# centre (near C1), neither nose nor head top: both masked.
SMPL22 = Skeleton(
    name="smpl22",
    joints=(
        "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
        "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist",
    ),
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19),
    flip_pairs=((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21)),
    to_canonical=(0, 2, 5, 8, 1, 4, 7, 6, 12, -1, -1, 16, 18, 20, 17, 19, 21),
)

SKELETONS: dict[str, Skeleton] = {
    s.name: s
    for s in (CANONICAL, MPII16, LSP14, FLIC11, COCO17, MPI3DHP28, MPI3DHP_TEST17, OCCLUSION_PERSON15,
              CMU_BVH17, SMPL22)
}


def to_canonical(joints: np.ndarray, valid: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Map native joints into ``CANONICAL``; absent joints are zero and masked.

    Args:
        joints: [N, J, D] joints in ``skeleton``'s native order (D = 2 or 3).
        valid: [N, J] bool, True where the native joint is annotated.
        skeleton: The native skeleton, with ``to_canonical`` set.

    Returns:
        ([N, 17, D] joints, [N, 17] bool valid). Nothing is interpolated.
    """
    if joints.shape[1] != skeleton.num_joints:
        raise ValueError(
            f"{skeleton.name} has {skeleton.num_joints} joints but the array has {joints.shape[1]}"
        )
    index = np.asarray(skeleton.to_canonical)
    present = index >= 0
    out = np.zeros((joints.shape[0], CANONICAL.num_joints, joints.shape[2]), dtype=joints.dtype)
    out_valid = np.zeros((joints.shape[0], CANONICAL.num_joints), dtype=bool)
    out[:, present] = joints[:, index[present]]
    out_valid[:, present] = valid[:, index[present]]
    return out, out_valid


def provided_joints(skeleton: Skeleton) -> np.ndarray:
    """[17] bool: which canonical joints a dataset in ``skeleton`` can ever annotate."""
    if skeleton is CANONICAL:
        return np.ones(CANONICAL.num_joints, dtype=bool)
    return np.asarray(skeleton.to_canonical) >= 0
