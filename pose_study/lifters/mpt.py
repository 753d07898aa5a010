"""TODO(helper): the mpt lifter."""

from torch import nn


class MptLifter(nn.Module):
    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        raise NotImplementedError("mpt lifter not built yet")
