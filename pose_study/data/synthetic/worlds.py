"""The synthetic worlds and ``SynthesizeSpec``, the spec of one rendered split.

Each world mirrors the role of real datasets in the study:

=========  ==============================  =================================================
world      mirrors                         what differs
=========  ==============================  =================================================
wild       MPII, LSP(+ET), FLIC (2D only)  diverse cameras (distance, elevation, focal, roll),
                                           gradients, textures and clutter, truncated crops;
                                           labels in the joint set of MPII, LSP or FLIC
lab        Human3.6M                       4 fixed cameras, plain studio, disjoint train/test
                                           subjects (S1,S5-S8 / S9,S11), 3D labels, clips
occluded   Occlusion-Person                lab-like capture (8 cameras) with boxes and bars in
                                           front of the person; labels kept (annotated)
outdoor    MPI-INF-3DHP                    sky and textured ground, camera heights from knee
                                           level to above the head, a camera per clip
mocap      CMU mocap / AMASS (pose-only)   no images, no camera: 3D poses of other subjects
                                           (bone lengths) with another activity mix, for the
                                           study's pose-only role; world frame, y down
=========  ==============================  =================================================

The ``mocap`` world is a pose pool: its subjects (``MC01``…) are none of the lab world's, so it
never holds a lab test subject's pose, and it has only ``train`` and ``val`` splits. Being cheap
(no rendering), it can hold many more poses than the lab train split; its size is the spec's
``num_samples``.

All randomness is drawn per clip and per sample from ``numpy.random.default_rng`` seeded with
``[seed, world, split, joint set, stream, index]`` (stream 0 = clip, 1 = sample), so the data do
not depend on how the split is cut into chunks, and changing the seed changes everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WORLDS = ("wild", "lab", "occluded", "outdoor", "mocap")
POSE_ONLY_WORLDS = ("mocap",)
SPLITS = ("train", "val", "test")
JOINT_SETS = ("h36m17", "mpii16", "lsp14", "flic11")
WILD_JOINT_SETS = ("mpii16", "lsp14", "flic11")
IMAGE_ENCODINGS = ("raw", "jpeg")
CROP_SIZES = (64, 256)  # inclusive range of crop sides, px
GENERATOR_VERSION = 1  # bump when the same spec would render different data


@dataclass(frozen=True)
class SynthesizeSpec:
    """One split of a synthetic world.

    Attributes:
        world: One of ``WORLDS``.
        split: One of ``SPLITS`` (3D worlds use disjoint subjects per split).
        num_samples: Number of images (> 0).
        crop_size: Square crop side in px, 64-256.
        seed: Non-negative random seed; the same spec gives identical arrays.
        joint_set: Labelled joints: ``wild`` takes ``mpii16`` | ``lsp14`` | ``flic11``; the 3D
            worlds take ``h36m17``. ``""`` = the world's default (``mpii16`` / ``h36m17``).
        dataset: Dataset name stored in the file; ``""`` = ``synth_<world>`` (wild:
            ``synth_wild_<joint_set>``).
        clip_length: Frames per clip in the 3D worlds (>= 1); wild images are single frames.
        chunk_size: Images rendered per batch (memory/speed only; the data do not depend on it).
        image_encoding: ``raw`` uint8 crops or ``jpeg`` bytes in the HDF5 file.
    """

    world: str
    split: str
    num_samples: int
    crop_size: int = 64
    seed: int = 0
    joint_set: str = ""
    dataset: str = ""
    clip_length: int = 8
    chunk_size: int = 256
    image_encoding: str = "raw"

    def __post_init__(self) -> None:
        _choice("world", self.world, WORLDS)
        _choice("split", self.split, SPLITS)
        if self.world in POSE_ONLY_WORLDS:
            _choice("split", self.split, tuple(WORLD_DEFS[self.world].subjects), f" for world {self.world!r}")
        allowed = WILD_JOINT_SETS if self.world == "wild" else ("h36m17",)
        object.__setattr__(self, "joint_set", self.joint_set or allowed[0])
        _choice("joint_set", self.joint_set, allowed, f" for world {self.world!r}")
        _choice("image_encoding", self.image_encoding, IMAGE_ENCODINGS)
        _positive("num_samples", self.num_samples, 1)
        _positive("clip_length", self.clip_length, 1)
        _positive("chunk_size", self.chunk_size, 1)
        _positive("seed", self.seed, 0)
        if not (isinstance(self.crop_size, int) and CROP_SIZES[0] <= self.crop_size <= CROP_SIZES[1]):
            raise ValueError(f"crop_size must be an integer in {CROP_SIZES[0]}..{CROP_SIZES[1]}, "
                             f"got {self.crop_size!r}")
        if not self.dataset:
            name = f"synth_wild_{self.joint_set}" if self.world == "wild" else f"synth_{self.world}"
            object.__setattr__(self, "dataset", name)

    @property
    def pose_only(self) -> bool:
        """True for a world without images (written as a pose-only split)."""
        return self.world in POSE_ONLY_WORLDS

    @property
    def frames_per_clip(self) -> int:
        """Clip length actually used: 1 for ``wild``."""
        return 1 if self.world == "wild" else self.clip_length


def _choice(name: str, value: object, allowed: tuple[str, ...], where: str = "") -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}{where}, got {value!r}")


def _positive(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --- world definitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedCamera:
    """A calibrated camera of a capture rig: centre and aim point (world mm), focal (px)."""

    name: str
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    focal: float


def _ring(count: int, radius: float, heights: tuple[float, ...], focal: float) -> tuple[FixedCamera, ...]:
    """``count`` cameras evenly around the capture centre, aimed at chest height."""
    cams = []
    for i in range(count):
        az = np.deg2rad(45.0 + 360.0 * i / count)
        pos = (radius * np.sin(az), heights[i % len(heights)], radius * np.cos(az))
        cams.append(FixedCamera(f"cam{i + 1}", tuple(float(v) for v in pos), (0.0, 1000.0, 0.0), focal))
    return tuple(cams)


@dataclass(frozen=True)
class World:
    """How one world samples people, cameras, crops and backgrounds (angles in degrees, mm, px).

    Attributes:
        name: World name.
        has_3d: Writes joints_3d and intrinsics.
        subjects: Subject ids per split; empty = a new random person per image.
        cameras: Fixed rig; empty = a camera per clip on an orbit around the person.
        source_size: (width, height) of the notional source image, px.
        focal: (min, max) source focal length for orbit cameras, px.
        distance: (min, max) orbit camera distance, mm.
        elevation: (min, max) orbit camera elevation above the person's chest, degrees.
        roll: Max camera roll, degrees.
        area: Half side of the square the person stands in (fixed rigs), mm.
        background: ``studio`` | ``wild`` | ``outdoor``.
        occluder_slots: Occluders per image (the first always present), 0 for none.
        crop_scale: (min, max) crop side / person extent.
        crop_shift: Max crop-centre shift, fraction of the crop side.
        truncation: Probability of a tight, shifted crop that cuts the person.
        pose_widen: Multiplies pose spreads.
        noise: (min, max) pixel noise sigma, grey levels.
        activity_weights: Relative frequency of each activity family (``poses.FAMILY_NAMES``
            order); empty = all equally likely.
    """

    name: str
    has_3d: bool
    subjects: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cameras: tuple[FixedCamera, ...] = ()
    source_size: tuple[int, int] = (1000, 1000)
    focal: tuple[float, float] = (1000.0, 1000.0)
    distance: tuple[float, float] = (4000.0, 6000.0)
    elevation: tuple[float, float] = (0.0, 20.0)
    roll: float = 0.0
    area: float = 0.0
    background: str = "studio"
    occluder_slots: int = 0
    crop_scale: tuple[float, float] = (1.15, 1.3)
    crop_shift: float = 0.03
    truncation: float = 0.0
    pose_widen: float = 1.0
    noise: tuple[float, float] = (1.5, 3.0)
    activity_weights: tuple[float, ...] = ()


WORLD_DEFS: dict[str, World] = {
    "wild": World(
        "wild", has_3d=False, source_size=(1280, 720), focal=(500.0, 2000.0), distance=(2500.0, 9000.0),
        elevation=(-15.0, 55.0), roll=15.0, background="wild", crop_scale=(1.1, 1.45), crop_shift=0.08,
        truncation=0.3, pose_widen=1.3, noise=(1.0, 8.0),
    ),
    "lab": World(
        "lab", has_3d=True,
        subjects={"train": ("S1", "S5", "S6", "S7", "S8"), "val": ("S2", "S3", "S4"), "test": ("S9", "S11")},
        cameras=_ring(4, 4800.0, (1500.0, 1700.0), 1145.0), area=1000.0,
    ),
    "occluded": World(
        "occluded", has_3d=True,
        subjects={"train": tuple(f"OP{i:02d}" for i in range(1, 10)), "val": ("OP10", "OP11"),
                  "test": ("OP12", "OP13", "OP14", "OP15")},
        cameras=_ring(8, 4500.0, (1200.0, 2400.0), 1000.0), area=800.0, occluder_slots=3,
    ),
    "outdoor": World(
        "outdoor", has_3d=True,
        subjects={"train": tuple(f"HP{i}" for i in range(1, 9)), "val": ("HP9",),
                  "test": tuple(f"TS{i}" for i in range(1, 7))},
        source_size=(2048, 2048), focal=(1400.0, 1700.0), distance=(3000.0, 7000.0), elevation=(-12.0, 35.0),
        background="outdoor", crop_scale=(1.15, 1.35), noise=(2.0, 5.0),
    ),
    # A mocap-collection-like mix (CMU: much locomotion, sports and reaching, little sitting),
    # unlike the lab world's uniform mix; wider pose spreads. Subjects disjoint from every world.
    "mocap": World(
        "mocap", has_3d=True,
        subjects={"train": tuple(f"MC{i:02d}" for i in range(1, 41)),
                  "val": tuple(f"MC{i:02d}" for i in range(41, 45))},
        area=2000.0, pose_widen=1.15,
        # standing, walking, arms_raised, sitting, crouching, reaching, bending, sports
        activity_weights=(0.5, 3.0, 1.5, 0.5, 1.0, 1.5, 1.0, 3.0),
    ),
}
