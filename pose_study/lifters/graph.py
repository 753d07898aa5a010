"""TODO(helper): the graph lifter."""

from torch import nn


class GraphLifter(nn.Module):
    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        raise NotImplementedError("graph lifter not built yet")
