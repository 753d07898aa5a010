"""The synthetic pose world: a procedural body, camera and painter that emit canonical splits.

Modules, in reading order: ``worlds`` (``SynthesizeSpec`` and the four worlds), ``generate``
(``synthesize_chunk``: people → poses → cameras → crops → pixels), ``body`` (proportions, joint
limits, forward kinematics), ``poses`` (activity families, clips), ``camera`` (pinhole, crops),
``render`` (capsule z-buffer painter) and ``backgrounds``.
"""

from pose_study.data.synthetic.generate import Chunk, synthesize_chunk
from pose_study.data.synthetic.worlds import WORLDS, SynthesizeSpec

__all__ = ["WORLDS", "Chunk", "SynthesizeSpec", "synthesize_chunk"]
