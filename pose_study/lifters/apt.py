"""TODO(helper): the apt lifter."""

from torch import nn


class AptLifter(nn.Module):
    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        raise NotImplementedError("apt lifter not built yet")
