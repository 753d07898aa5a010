"""Hierarchical anatomical masks for masked pose modeling (APTPose, Yang et al.).

Four levels, each a set of joint groups found from a skeleton's data (names and parents), so any
``pose_study.skeletons.Skeleton`` works:

* ``joint``: every joint on its own;
* ``bone``: every (joint, parent) pair;
* ``limb``: shoulder-elbow-wrist and hip-knee-ankle of each side (where the skeleton has all three);
* ``side``: all joints of the person's left side, all joints of the right side.

:func:`sample_mask` masks whole groups of one level per (sample, frame) until about ``ratio`` of
the joints are hidden. :func:`sample_temporal_mask` hides whole frames of a window (temporal
masking: the encoder sees the other frames, the padding decoder fills these in).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from pose_study.skeletons import Skeleton

MASK_LEVELS = ("joint", "bone", "limb", "side")
SIDES = ("l_", "r_")  # joint-name prefixes of the person's left and right side (skeletons.py naming)
LIMBS = (("shoulder", "elbow", "wrist"), ("hip", "knee", "ankle"))  # chains, proximal to distal

Groups = tuple[tuple[int, ...], ...]


def _limb_groups(skeleton: Skeleton) -> Groups:
    """Arm and leg chains per side, left first, arm before leg; chains the skeleton lacks are skipped."""
    groups = []
    for prefix in SIDES:
        for chain in LIMBS:
            names = [prefix + part for part in chain]
            if all(name in skeleton.joints for name in names):
                groups.append(tuple(skeleton.index(name) for name in names))
    return tuple(groups)


def _side_groups(skeleton: Skeleton) -> Groups:
    """Left joints, then right joints (by name prefix)."""
    groups = tuple(tuple(j for j, name in enumerate(skeleton.joints) if name.startswith(prefix)) for prefix in SIDES)
    return tuple(group for group in groups if group)


def mask_groups(skeleton: Skeleton, level: str) -> Groups:
    """Joint groups that one mask level hides together.

    Args:
        skeleton: The joint set (e.g. ``CANONICAL`` or ``MPII16``).
        level: One of ``MASK_LEVELS``.

    Returns:
        Tuples of joint indices: ``joint`` → ``(j,)`` per joint; ``bone`` → ``(j, parent(j))`` per
        non-root joint; ``limb`` → (shoulder, elbow, wrist) and (hip, knee, ankle) of the left, then
        the right side; ``side`` → all left joints, all right joints.
    """
    if level == "joint":
        groups: Groups = tuple((j,) for j in range(skeleton.num_joints))
    elif level == "bone":
        groups = tuple(skeleton.bones)
    elif level == "limb":
        groups = _limb_groups(skeleton)
    elif level == "side":
        groups = _side_groups(skeleton)
    else:
        raise ValueError(f"unknown mask level {level!r}; choices: {MASK_LEVELS}")
    if not groups:
        raise ValueError(f"skeleton {skeleton.name!r} has no {level!r} groups")
    return groups


def group_matrix(groups: Groups, num_joints: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[G, K] bool membership: row g is True at the joints of group g (cached per device; do not modify)."""
    return _group_matrix(tuple(map(tuple, groups)), num_joints, str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=64)
def _group_matrix(groups: Groups, num_joints: int, device: str) -> torch.Tensor:
    member = torch.zeros(len(groups), num_joints, dtype=torch.bool)
    for g, group in enumerate(groups):
        if max(group) >= num_joints:
            raise ValueError(f"group {group} indexes past {num_joints} joints")
        member[g, list(group)] = True
    return member.to(device)


def sample_mask(groups: Groups, shape: Sequence[int], ratio: float, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Hide whole groups, in a random order per (sample, frame), until ≥ ``round(ratio · K)`` joints are hidden.

    Groups are taken one after the other from an independent random permutation per (sample,
    frame); the first prefix of that permutation that covers at least the target count is masked
    (all groups when even their union falls short). ``ratio == 0`` masks nothing; any positive
    ratio masks at least one group.

    Args:
        groups: From :func:`mask_groups`.
        shape: (B, T, K).
        ratio: Target fraction of the K joints to hide, in [0, 1].
        generator: Random source (draws happen on its device, then move to ``device``).
        device: Device of the result (default: the generator's).

    Returns:
        [B, T, K] bool, True = masked.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
    b, t, k = shape
    draw_device = generator.device if generator is not None else torch.device("cpu")
    device = draw_device if device is None else torch.device(device)
    target = max(1, round(ratio * k)) if ratio > 0 else 0
    if target == 0:
        return torch.zeros(b, t, k, dtype=torch.bool, device=device)
    order = torch.rand(b, t, len(groups), generator=generator, device=draw_device).argsort(dim=-1).to(device)
    member = group_matrix(groups, k, device)
    covered = member[order].cumsum(dim=2) > 0  # [B, T, G, K]: union of the first g + 1 groups
    taken = (covered.sum(dim=-1) < target).sum(dim=-1).clamp(max=len(groups) - 1)  # [B, T]
    return covered.gather(2, taken[:, :, None, None].expand(b, t, 1, k))[:, :, 0]


def sample_temporal_mask(shape: Sequence[int], ratio: float, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Hide ``min(round(ratio · T), T − 1)`` frames of each window, at random positions per sample.

    Every sample hides the same number of frames (the encoder then takes a [B, T − m] batch) and
    keeps at least one.

    Args:
        shape: (B, T).
        ratio: Target fraction of frames to hide, in [0, 1).
        generator: Random source (draws happen on its device, then move to ``device``).
        device: Device of the result (default: the generator's).

    Returns:
        [B, T] bool, True = frame masked.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"temporal mask ratio must be in [0, 1), got {ratio}")
    b, t = shape
    draw_device = generator.device if generator is not None else torch.device("cpu")
    device = draw_device if device is None else torch.device(device)
    hidden = min(round(ratio * t), t - 1)
    draws = torch.rand(b, t, generator=generator, device=draw_device)
    rank = draws.argsort(dim=-1).argsort(dim=-1).to(device)
    return rank < hidden
