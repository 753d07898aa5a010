import numpy as np
import pytest

from pose_study import skeletons as sk

NATIVE = [s for s in sk.SKELETONS.values() if s is not sk.CANONICAL]


@pytest.mark.parametrize("skeleton", list(sk.SKELETONS.values()), ids=lambda s: s.name)
def test_tree_has_one_root_and_no_cycles(skeleton):
    roots = [j for j, p in enumerate(skeleton.parents) if p < 0]
    assert len(roots) == 1
    for j in range(skeleton.num_joints):  # walking up from every joint reaches the root
        seen = set()
        while skeleton.parents[j] >= 0:
            assert j not in seen
            seen.add(j)
            j = skeleton.parents[j]


@pytest.mark.parametrize("skeleton", list(sk.SKELETONS.values()), ids=lambda s: s.name)
def test_flip_pairs_swap_left_and_right_names(skeleton):
    perm = skeleton.flip_permutation()
    assert sorted(perm) == list(range(skeleton.num_joints))
    for a, b in skeleton.flip_pairs:
        left, right = sorted([skeleton.joints[a], skeleton.joints[b]])
        assert left.startswith("l_") and right.startswith("r_") and left[2:] == right[2:]
    assert (perm[perm] == np.arange(skeleton.num_joints)).all()


@pytest.mark.parametrize("skeleton", NATIVE, ids=lambda s: s.name)
def test_maps_into_canonical_by_joint_name(skeleton):
    """Every mapped joint lands on the canonical joint of the same name, or on one of the
    approximate correspondences (≈) listed in reference/datasets.md §9.2."""
    approx = {("upper_neck", "neck"), ("head", "nose"), ("belly", "spine"),
              ("spine2", "spine")}  # SMPL's mid-torso joint (pose_study.skeletons.SMPL22)
    for canon, native in enumerate(skeleton.to_canonical):
        if native < 0:
            continue
        pair = (skeleton.joints[native], sk.CANONICAL.joints[canon])
        assert pair[0] == pair[1] or pair in approx, pair


def test_mpii_index_vector_matches_reference_table():
    # reference/datasets.md §9.2 "from MPII-16"
    assert sk.MPII16.to_canonical == (6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10)


def test_to_canonical_masks_missing_joints_and_never_fabricates():
    joints = np.arange(14 * 2, dtype=float).reshape(1, 14, 2) + 1
    valid = np.ones((1, 14), bool)
    valid[0, 0] = False  # r_ankle not annotated
    out, out_valid = sk.to_canonical(joints, valid, sk.LSP14)
    assert not out_valid[0, [0, 7, 9]].any()  # pelvis, spine, nose: LSP has none
    assert (out[0, [0, 7, 9]] == 0).all()
    assert not out_valid[0, sk.CANONICAL.index("r_ankle")]
    np.testing.assert_array_equal(out[0, sk.CANONICAL.index("head_top")], joints[0, 13])


def test_flic_provides_upper_body_only():
    provided = sk.provided_joints(sk.FLIC11)
    legs = [sk.CANONICAL.index(n) for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]
    assert not provided[legs].any()
    assert provided[sk.CANONICAL.index("l_wrist")]


def test_unknown_joint_name_is_a_clear_error():
    with pytest.raises(ValueError, match="not in skeleton 'mpii16'"):
        sk.MPII16.index("tail")
