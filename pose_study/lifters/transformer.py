"""TODO(helper): the transformer lifter."""

from torch import nn


class TransformerLifter(nn.Module):
    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        raise NotImplementedError("transformer lifter not built yet")
