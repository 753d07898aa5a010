"""pose_study: a study harness for 2D pre-training for 3D human pose estimation."""

__version__ = "0.1.0"
