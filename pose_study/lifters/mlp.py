"""TODO(helper): the mlp lifter."""

from torch import nn


class MlpLifter(nn.Module):
    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        raise NotImplementedError("mlp lifter not built yet")
