"""CPU threads rule and data-parallel training: helpers, and two gloo ranks training in step."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pose_study.stages import _training
from pose_study.stages.pretrain_2d import Pretrain2DSpec
from pose_study.train import distributed
from pose_study.train.checkpoint import load_checkpoint
from pose_study.train.detection import DetectorTask
from pose_study.train.loop import LoopSpec, Phase

STEPS, BATCH = 8, 8


def test_threads_come_from_omp_num_threads_when_set():
    threads, source = distributed.cpu_threads({"OMP_NUM_THREADS": "3"})
    assert threads == 3 and "OMP_NUM_THREADS" in source


def test_threads_fall_back_to_the_available_cores_shared_by_local_ranks():
    cores = len(os.sched_getaffinity(0))
    assert distributed.cpu_threads({})[0] == max(1, min(cores, torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(64)  # torch may count more cores than the process may use
    try:
        assert distributed.cpu_threads({})[0] == cores
        assert distributed.cpu_threads({"LOCAL_WORLD_SIZE": str(cores)})[0] == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_omp_num_threads_is_named(value):
    with pytest.raises(ValueError, match=f"OMP_NUM_THREADS must be a positive integer, got '{value}'"):
        distributed.cpu_threads({"OMP_NUM_THREADS": value})


def test_configure_threads_sets_and_returns_them():
    before = torch.get_num_threads()
    try:
        assert distributed.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_info_from_torchrun_variables():
    assert distributed.info_from_env({}) == distributed.DistInfo(0, 0, 1)
    info = distributed.info_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert info.enabled and not info.is_main and (info.rank, info.local_rank, info.world_size) == (3, 1, 4)
    with pytest.raises(ValueError, match="RANK=2 WORLD_SIZE=2"):
        distributed.info_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_single_process_helpers_change_nothing():
    info = distributed.DistInfo()
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, info) is model
    assert distributed.rank_seed(5, info) == 5
    assert distributed.any_rank(True, info, torch.device("cpu")) is True
    assert distributed.gather_objects("x", info) == ["x"]
    assert distributed.device_for(torch.device("cpu"), info) == torch.device("cpu")


def test_ranks_draw_from_different_seeds():
    seeds = {distributed.rank_seed(0, distributed.DistInfo(r, r, 4)) for r in range(4)}
    assert len(seeds) == 4


# --- two processes, gloo ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, world: dict, root: Path, device: str = "cpu") -> None:
    """One rank of a 2-process pre-training run, as ``pretrain_2d.run`` does it, keeping the model."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    loop = LoopSpec(batch_size=BATCH, device=device, eval_every=STEPS, log_every=4, checkpoint_every=4,
                    eval_samples=32)
    spec = Pretrain2DSpec(model="hg1_tiny", steps=STEPS, lr=2e-3, loop=loop)
    model, device = _training.build(spec.model, loop)
    data = _training.load_data(world["wild_val"], device, train_2d=world["wild_train"])
    out = _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")
    phases = [Phase("pretrain_2d", STEPS, DetectorTask(data, loop), loop.schedule(spec.lr))]
    result = _training.run_training("pretrain_2d", spec, model, spec.model, phases, data, out)
    params = {k: v.detach().cpu() for k, v in model.named_parameters()}  # cpu: ranks' devices differ on CUDA
    torch.save({"params": params, "returned": bool(result)}, root / f"rank{rank}.pt")


def test_two_gloo_ranks_step_in_sync_and_only_rank_0_writes(tiny_world, tmp_path):
    # fork: the ranks inherit the imports (CPU only; spawn would re-import torch in each rank)
    mp.start_processes(_rank_main, args=(_free_port(), tiny_world, tmp_path), nprocs=2, start_method="fork")
    _check_ranks_agree_and_rank_0_wrote(tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_nccl_ranks_step_in_sync_and_only_rank_0_writes(tiny_world, tmp_path):
    # spawn: CUDA cannot be used in a forked child once the parent has touched it (other gpu tests)
    mp.start_processes(_rank_main, args=(_free_port(), tiny_world, tmp_path, "cuda"), nprocs=2,
                       start_method="spawn")
    _check_ranks_agree_and_rank_0_wrote(tmp_path)


def _check_ranks_agree_and_rank_0_wrote(tmp_path: Path) -> None:
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in ranks[0]["params"].items():
        torch.testing.assert_close(ranks[1]["params"][name], value, atol=0, rtol=0, msg=name)
    assert ranks[0]["returned"] and not ranks[1]["returned"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["compute"]["device_count"] == 2
    assert metrics["compute"]["train_samples"] == STEPS * BATCH * 2  # samples of both ranks
    state = load_checkpoint(tmp_path / "ckpt")
    assert state["progress"]["step"] == STEPS and len(state["generators"]) == 2
    assert not torch.equal(state["generators"][0], state["generators"][1])  # ranks drew different batches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "curve.csv", "metrics.json", "model.pt",
                                                          "rank0.pt", "rank1.pt", "spec.json"]
