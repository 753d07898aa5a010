"""Render a range of samples of a ``SynthesizeSpec``: people → poses → cameras → crops → pixels.

``synthesize_chunk(spec, start, stop)`` returns samples ``start..stop-1`` of the split together
with the body and occluder masks (the masks are for tests and are not written to the file).
Sample ``i`` is frame ``i % T`` of clip ``i // T`` (T = ``spec.frames_per_clip``); a clip keeps
its subject, activity, camera, lighting and background while the pose moves smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose_study.data.synthetic import backgrounds as bg
from pose_study.data.synthetic import camera as cam
from pose_study.data.synthetic.body import (
    P, SHAPE_UNIFORMS, BodyShape, PosedBody, body_shape, forward_kinematics, subject_uniforms, yaw_rotation,
)
from pose_study.data.synthetic.poses import FAMILIES, FAMILY_NAMES, clip_poses, draw_poses, walk_offset
from pose_study.data.synthetic.render import (
    PALETTE_UNIFORMS, PART_END, PART_START, POINT_INDEX, figure_points, paint_body, palette, part_radii,
    shade_body, torso_widths,
)
from pose_study.data.synthetic.worlds import JOINT_SETS, SPLITS, WORLD_DEFS, WORLDS, SynthesizeSpec, World
from pose_study.skeletons import SKELETONS, provided_joints

CLIP_UNIFORMS = 512
SAMPLE_UNIFORMS = 64
_CLUTTER_SLOTS = 4
_UPPER_BODY = np.array([POINT_INDEX[n] for n in (
    "l_hip", "r_hip", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
    "neck")])


class _Stream:
    """Hands out consecutive columns of a [B, n] uniform matrix (fixed order = fixed meaning)."""

    def __init__(self, u: np.ndarray) -> None:
        self.u, self.pos = u, 0

    def take(self, n: int) -> np.ndarray:
        assert self.pos + n <= self.u.shape[1], "uniform stream exhausted"
        self.pos += n
        return self.u[:, self.pos - n:self.pos]

    def one(self) -> np.ndarray:
        return self.take(1)[:, 0]

    def range(self, lo: float, hi: float) -> np.ndarray:
        return lo + (hi - lo) * self.one()


@dataclass
class Chunk:
    """Rendered samples with labels (shapes as in ``pose_study.data.formats``) and test masks.

    ``joints_3d``/``joints_3d_valid``/``intrinsics`` are None for 2D-only worlds, ``head_box`` is
    None unless the joint set is ``mpii16``. ``body_mask`` [N, S, S] marks visible body pixels and
    ``occluder_mask`` [N, S, S] the pixels covered by occluders.
    """

    images: np.ndarray
    joints_2d: np.ndarray
    joints_2d_valid: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    joints_3d: np.ndarray | None
    joints_3d_valid: np.ndarray | None
    intrinsics: np.ndarray | None
    head_box: np.ndarray | None
    subject: np.ndarray
    action: np.ndarray
    camera: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    body_mask: np.ndarray
    occluder_mask: np.ndarray


def _key(spec: SynthesizeSpec) -> list[int]:
    return [spec.seed, WORLDS.index(spec.world), SPLITS.index(spec.split), JOINT_SETS.index(spec.joint_set)]


def _clip_uniforms(spec: SynthesizeSpec, clips: np.ndarray) -> np.ndarray:
    """[len(clips), CLIP_UNIFORMS] uniforms, one generator per clip (so chunking cannot change them)."""
    key = _key(spec)
    return np.stack([np.random.default_rng([*key, 0, int(c)]).random(CLIP_UNIFORMS) for c in clips])


def _sample_draws(spec: SynthesizeSpec, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample uniforms [B, SAMPLE_UNIFORMS] and unit Gaussian pixel noise [B, S, S] float32."""
    s, key = spec.crop_size, _key(spec)
    u = np.empty((len(index), SAMPLE_UNIFORMS))
    noise = np.empty((len(index), s, s), np.float32)
    for j, i in enumerate(index):
        rng = np.random.default_rng([*key, 1, int(i)])
        u[j] = rng.random(SAMPLE_UNIFORMS)
        noise[j] = rng.standard_normal((s, s), dtype=np.float32)
    return u, noise


def synthesize_chunk(spec: SynthesizeSpec, start: int, stop: int) -> Chunk:
    """Render samples ``start..stop-1`` of ``spec`` (0 <= start < stop <= spec.num_samples)."""
    world, index, clip, frame, clip_u = _clips(spec, start, stop)
    t_len = spec.frames_per_clip
    sample_uniforms, noise = _sample_draws(spec, index)
    sample_u = _Stream(sample_uniforms)
    people = _people(world, spec.split, clip_u)
    scene = _scene(world, people, clip_u, frame, t_len)
    view = _crop(world, spec, scene, sample_u)
    return _paint(world, spec, scene, view, clip_u, sample_u, noise, clip, frame)


def _clips(spec: SynthesizeSpec, start: int,
           stop: int) -> tuple[World, np.ndarray, np.ndarray, np.ndarray, _Stream]:
    """(world, sample indices, clip and frame of each sample, the clips' uniform draws) of samples
    ``start..stop-1``: a clip's draws depend on the clip alone, so they do not depend on the chunking."""
    if not 0 <= start < stop <= spec.num_samples:
        raise ValueError(f"sample range {start}..{stop} is outside 0..{spec.num_samples}")
    index = np.arange(start, stop)
    clip, frame = index // spec.frames_per_clip, index % spec.frames_per_clip
    uc, inverse = np.unique(clip, return_inverse=True)
    return WORLD_DEFS[spec.world], index, clip, frame, _Stream(_clip_uniforms(spec, uc)[inverse])


# --- people and poses ---------------------------------------------------------------------------


@dataclass
class _People:
    shape: BodyShape
    colours: np.ndarray
    subject: np.ndarray


def _people(world: World, split: str, u: _Stream) -> _People:
    """Body shape and clothing per clip: fixed by the subject id, or random (wild)."""
    pick = u.one()
    random_look = u.take(SHAPE_UNIFORMS + PALETTE_UNIFORMS)
    pool = world.subjects.get(split, ())
    if not pool:
        subject = np.full(len(pick), "", dtype=object)
        look = random_look
    else:
        subject = np.array(pool, dtype=object)[(pick * len(pool)).astype(int)]
        table = {s: subject_uniforms(s, SHAPE_UNIFORMS + PALETTE_UNIFORMS) for s in pool}
        look = np.stack([table[s] for s in subject])
    return _People(body_shape(look[:, :SHAPE_UNIFORMS]), palette(look[:, SHAPE_UNIFORMS:]), subject)


@dataclass
class _Scene:
    points: np.ndarray  # [B, len(POINT_NAMES), 3] camera frame, mm
    torso_axes: np.ndarray  # [B, 3, 3] chest axes, camera frame
    k_src: np.ndarray  # [B, 3, 3] source intrinsics, px
    rotation: np.ndarray  # [B, 3, 3] world -> camera
    family: np.ndarray  # [B] activity index
    camera: np.ndarray  # [B] camera ids ("" for orbit cameras)
    people: _People


def _scene(world: World, people: _People, u: _Stream, frame: np.ndarray, t_len: int) -> _Scene:
    """Pose each clip's person at its frame and place it in front of the clip's camera."""
    body = _bodies(world, people, u, frame, t_len)
    target = body.origin + u.range(700.0, 1200.0)[:, None] * cam.UP
    rotation, position, k_src, name = _camera(world, u, target)
    return _Scene(points=cam.to_camera(body.points, rotation, position),
                  torso_axes=rotation @ body.yaw @ body.posed.torso_axes,
                  k_src=k_src, rotation=rotation, family=body.family, camera=name, people=people)


@dataclass
class _Bodies:
    points: np.ndarray  # [B, len(POINT_NAMES), 3] world frame (y up), mm
    posed: PosedBody  # body-frame points and torso axes
    yaw: np.ndarray  # [B, 3, 3] body -> world heading
    origin: np.ndarray  # [B, 3] where the person stands, world mm
    family: np.ndarray  # [B] activity index


def _family(world: World, u: np.ndarray) -> np.ndarray:
    """[B] activity index from uniforms: uniform, or by the world's ``activity_weights``."""
    if not world.activity_weights:
        return (u * len(FAMILIES)).astype(int)
    cumulative = np.cumsum(world.activity_weights) / np.sum(world.activity_weights)
    return np.minimum(np.searchsorted(cumulative, u, side="right"), len(FAMILIES) - 1)


def _bodies(world: World, people: _People, u: _Stream, frame: np.ndarray, t_len: int) -> _Bodies:
    """Each clip's person posed at its frame and standing on the floor of the world (y up)."""
    family = _family(world, u.one())
    mirror = u.one() < 0.5
    start = draw_poses(family, u.take(P), mirror, world.pose_widen)
    end = draw_poses(family, u.take(P), mirror, world.pose_widen)
    pose = clip_poses(family, start, end, 2 * np.pi * u.one(), frame, t_len)
    posed = forward_kinematics(pose, people.shape)
    heading = 2 * np.pi * u.one()
    yaw = yaw_rotation(heading + np.deg2rad(10.0) * (2 * u.one() - 1) * frame)  # slow turn in the clip
    pts = np.einsum("bij,bmj->bmi", yaw, figure_points(posed, people.shape))
    origin = np.stack([u.range(-1, 1), np.zeros(len(frame)), u.range(-1, 1)], -1) * world.area
    walk = np.stack([np.sin(heading), np.zeros_like(heading), np.cos(heading)], -1)
    floor = pts[:, :, 1].min(axis=1) - people.shape.radius("foot")
    pts = pts + (origin + walk_offset(family, frame)[:, None] * walk - floor[:, None] * cam.UP)[:, None]
    return _Bodies(points=pts, posed=posed, yaw=yaw, origin=origin, family=family)


# --- pose-only worlds -----------------------------------------------------------------------------

# y up (the synthetic world) -> y down (pose-only splits, ``formats``): a half turn about x.
_Y_UP_TO_Y_DOWN = np.diag([1.0, -1.0, -1.0])


@dataclass
class PoseChunk:
    """Poses of a pose-only world (shapes as in ``pose_study.data.formats``; no images, no camera)."""

    joints_3d: np.ndarray  # [B, 17, 3] world frame, y down, mm
    subject: np.ndarray
    action: np.ndarray
    clip: np.ndarray
    frame: np.ndarray


def synthesize_poses(spec: SynthesizeSpec, start: int, stop: int) -> PoseChunk:
    """Poses ``start..stop-1`` of a pose-only world's ``spec`` (no rendering; clips as in
    ``synthesize_chunk``)."""
    if not spec.pose_only:
        raise ValueError(f"world {spec.world!r} renders images; use synthesize_chunk")
    world, _, clip, frame, u = _clips(spec, start, stop)
    people = _people(world, spec.split, u)
    body = _bodies(world, people, u, frame, spec.frames_per_clip)
    action = np.array(FAMILY_NAMES, dtype=object)[body.family]
    names = [f"{s}_{a}_{k:06d}" for s, a, k in zip(people.subject, action, clip)]
    return PoseChunk(joints_3d=(body.points[:, :17] @ _Y_UP_TO_Y_DOWN.T).astype(np.float32),
                     subject=people.subject, action=action, clip=np.array(names, dtype=object),
                     frame=frame.astype(np.int64))


def _camera(world: World, u: _Stream, target: np.ndarray) -> tuple[np.ndarray, ...]:
    """(rotation [B,3,3], position [B,3] mm, source K [B,3,3], names [B]) of each clip's camera."""
    pick, azimuth = u.one(), 2 * np.pi * u.one()
    elevation = np.deg2rad(u.range(*world.elevation))
    distance, focal = u.range(*world.distance), u.range(*world.focal)
    roll = np.deg2rad(world.roll * (2 * u.one() - 1)) * (u.one() < 0.6)
    principal = np.tile(np.array(world.source_size, float) / 2.0 - 0.5, (len(pick), 1))
    if world.cameras:
        rig = [world.cameras[i] for i in (pick * len(world.cameras)).astype(int)]
        position = np.array([c.position for c in rig])
        rotation = cam.look_at(position, np.array([c.target for c in rig]))
        k_src = cam.intrinsics(np.array([c.focal for c in rig]), principal)
        return rotation, position, k_src, np.array([c.name for c in rig], dtype=object)
    position = cam.orbit_position(target, azimuth, elevation, distance)
    position[:, 1] = np.maximum(position[:, 1], 300.0)  # keep the camera above the floor
    rotation = cam.look_at(position, target, roll)
    return rotation, position, cam.intrinsics(focal, principal), np.full(len(pick), "", dtype=object)


# --- crops ----------------------------------------------------------------------------------------


@dataclass
class _View:
    k_crop: np.ndarray  # [B, 3, 3] crop intrinsics
    center: np.ndarray  # [B, 2] crop centre, source px
    scale: np.ndarray  # [B] crop side, source px


def _crop(world: World, spec: SynthesizeSpec, scene: _Scene, u: _Stream) -> _View:
    """Centre a square crop on the person with scale/shift jitter; some wild crops truncate."""
    xy = cam.project(scene.k_src, scene.points)
    head = POINT_INDEX["head_center"]
    head_r = scene.people.shape.length("head_radius") * scene.k_src[:, 0, 0] / scene.points[:, head, 2]
    sel = _UPPER_BODY if spec.joint_set == "flic11" else slice(None)  # FLIC frames the upper body
    box = np.concatenate([xy[:, sel], xy[:, head:head + 1] - head_r[:, None, None],
                          xy[:, head:head + 1] + head_r[:, None, None]], axis=1)
    lo, hi = box.min(axis=1), box.max(axis=1)
    side = (hi - lo).max(axis=1) * u.range(*world.crop_scale)
    shift = (2 * u.take(2) - 1) * world.crop_shift
    cut = u.one() < world.truncation
    cut_zoom, cut_shift = u.range(0.55, 0.9), (2 * u.take(2) - 1) * 0.3
    side = np.where(cut, side * cut_zoom, side)
    center = (lo + hi) / 2 + np.where(cut[:, None], cut_shift, shift) * side[:, None]
    return _View(cam.crop_intrinsics(scene.k_src, center, side, spec.crop_size), center, side)


# --- pixels and labels ----------------------------------------------------------------------------


def _background(world: World, scene: _Scene, view: _View, u: _Stream, size: int) -> np.ndarray:
    """[B, S, S, 3] float32 background of each image."""
    gradient = u.take(bg.GRADIENT_UNIFORMS)
    noise = bg.value_noise(u.take(bg.TEXTURE_UNIFORMS), size)
    texture_amount, outdoor = u.one(), u.take(bg.OUTDOOR_UNIFORMS)
    shapes = u.take(_CLUTTER_SLOTS * bg.SHAPE_UNIFORMS)
    if world.background == "wild":
        image = bg.textured(bg.gradient(gradient, size), noise, 1.2 * texture_amount)
        return bg.clutter(image, shapes, _CLUTTER_SLOTS, active=0.6, texture=noise)
    if world.background == "outdoor":
        horizon = cam.horizon_row(view.k_crop, scene.rotation)
        image = bg.outdoor(outdoor, noise, horizon, size)
        return bg.clutter(image, shapes, _CLUTTER_SLOTS, active=0.25, texture=noise)
    look = np.stack([subject_uniforms(f"camera:{name}", 4) for name in scene.camera])
    wall = 110.0 + 100.0 * look[:, :1] + 25.0 * (look[:, 1:4] - 0.5)
    return bg.studio(wall, 0.6 * wall[:, ::-1], size)


def _paint(world: World, spec: SynthesizeSpec, scene: _Scene, view: _View, uc: _Stream, us: _Stream,
           noise: np.ndarray, clip: np.ndarray, frame: np.ndarray) -> Chunk:
    """Rasterise bodies over backgrounds, add occluders and noise, and assemble the labels."""
    size, pts = spec.crop_size, scene.points
    xy, z, focal = cam.project(view.k_crop, pts), pts[..., 2], view.k_crop[:, 0, 0]
    radii = part_radii(scene.people.shape) * torso_widths(pts, scene.torso_axes)[..., None]
    radii_px = radii * focal[:, None, None] / np.stack([z[:, PART_START], z[:, PART_END]], -1)
    light = np.stack([uc.range(-1, 1), uc.range(-1, -0.2), uc.range(-1, -0.3)], -1)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    ambient, sigma = uc.range(0.35, 0.6), uc.range(*world.noise)
    layer = paint_body(xy, z, radii_px, focal, light, size)
    image = _background(world, scene, view, uc, size)
    image = np.where(layer.mask[..., None], shade_body(layer, scene.people.colours, ambient), image)
    occluded = np.zeros(layer.mask.shape, bool)
    occ_u = us.take(3 * bg.SHAPE_UNIFORMS)
    if world.occluder_slots:
        image, occluded = bg.occluders(image, occ_u, xy[:, :17], world.occluder_slots, active=0.4)
    gain = us.range(0.7, 1.25)[:, None] * (1 + 0.2 * (us.take(3) - 0.5))  # camera response, wild only
    if world.background == "wild":
        image = image * gain[:, None, None].astype(np.float32)
    image = image + sigma.astype(np.float32)[:, None, None, None] * noise[..., None]
    images = np.minimum(np.maximum(image + 0.5, 0), 255).astype(np.uint8)
    return _labels(world, spec, scene, view, xy, images, layer.mask & ~occluded, occluded, clip, frame)


def _labels(world: World, spec: SynthesizeSpec, scene: _Scene, view: _View, xy: np.ndarray,
            images: np.ndarray, body: np.ndarray, occluded: np.ndarray, clip: np.ndarray,
            frame: np.ndarray) -> Chunk:
    """Joint labels in the canonical set, masked by the joint set and (wild) by the crop border."""
    size, n = spec.crop_size, len(images)
    joints = xy[:, :17].astype(np.float32)
    provided = provided_joints(SKELETONS[spec.joint_set])
    inside = ((joints > -0.5) & (joints < size - 0.5)).all(axis=2)
    valid = np.broadcast_to(provided, (n, 17)) & (inside | world.has_3d)
    action = np.array(FAMILY_NAMES, dtype=object)[scene.family]
    subject = scene.people.subject
    names = ["_".join(p for p in (s or spec.world, a, c, f"{k:06d}") if p)
             for s, a, c, k in zip(subject, action, scene.camera, clip)]
    three_d = world.has_3d
    return Chunk(
        images=images, joints_2d=np.where(valid[..., None], joints, 0.0).astype(np.float32),
        joints_2d_valid=valid, center=view.center.astype(np.float32), scale=view.scale.astype(np.float32),
        joints_3d=scene.points[:, :17].astype(np.float32) if three_d else None,
        joints_3d_valid=np.ones((n, 17), bool) if three_d else None,
        intrinsics=view.k_crop.astype(np.float32) if three_d else None,
        head_box=_head_box(scene, view) if spec.joint_set == "mpii16" else None,
        subject=subject, action=action, camera=scene.camera, clip=np.array(names, dtype=object),
        frame=frame.astype(np.int64), body_mask=body, occluder_mask=occluded,
    )


def _head_box(scene: _Scene, view: _View) -> np.ndarray:
    """[B, 4] x1, y1, x2, y2 crop px: a square around the head, as tall as the head (MPII-like)."""
    centre_3d = scene.points[:, POINT_INDEX["head_center"]]
    centre = cam.project(view.k_crop, centre_3d[:, None])[:, 0]
    r = 1.05 * scene.people.shape.length("head_radius") * view.k_crop[:, 0, 0] / centre_3d[:, 2]
    return np.concatenate([centre - r[:, None], centre + r[:, None]], axis=1).astype(np.float32)
