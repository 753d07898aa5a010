"""Memory requests follow from the data budget; multi-GPU training jobs start DDP themselves."""

from __future__ import annotations

import pytest

from pose_study import resources


def test_need_grows_with_the_budget_and_the_ranks_not_the_data():
    assert resources.need_mb("finetune_3d", 2048) == resources.BASE_MB + 3 * 2048
    assert resources.need_mb("pretrain_2d", 0) == resources.BASE_MB
    assert resources.need_mb("pretrain_2d", 1000, gpus=4) == 4 * (resources.BASE_MB + 2000)
    with pytest.raises(ValueError, match="no memory formula for rule 'collect'"):
        resources.need_mb("collect", 1000)


def test_more_than_one_gpu_starts_torchrun():
    assert resources.launcher(1) == "python"
    assert resources.launcher(4) == "python -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node 4"
