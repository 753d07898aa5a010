"""Every preset: forward contract, backward; parameter counts and FLOPs against the seed's tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pose_study.models import (
    MODELS,
    ModelPreset,
    build_from_preset,
    build_model,
    count_parameters,
    forward_flops,
)
from pose_study.models.hourglass import Hourglass, Residual

SLOW = {"hg4", "hg8", "resnet50", "resnet101", "resnet152"}
PRESETS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in MODELS]
FAST = ["hg1_tiny", "hg2_tiny", "hg4_tiny", "resnet_tiny", "resnet18"]
K = 17


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on shared CPU cores, idle-spinning OpenMP workers slow these small
    forwards tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_on_meta(preset: ModelPreset | str, num_joints: int = 16) -> nn.Module:
    """A model with meta tensors: parameter counts and FLOPs without allocating weights."""
    with torch.device("meta"):
        if isinstance(preset, str):
            return build_model(preset, num_joints)
        return build_from_preset(preset, num_joints)


def params_2d(model: nn.Module) -> int:
    """Parameters of a heatmap-only (2D) model: everything but the depth heads."""
    return sum(p.numel() for name, p in model.named_parameters() if ".depth." not in name)


def check_contract(out: dict, batch: int, height: int, width: int, stacks: int) -> None:
    assert set(out) == {"heatmaps", "depth", "stacks"}
    assert len(out["stacks"]) == stacks
    assert out["stacks"][-1][0] is out["heatmaps"] and out["stacks"][-1][1] is out["depth"]
    for heatmaps, depth in out["stacks"]:
        assert heatmaps.shape == depth.shape == (batch, K, height // 4, width // 4)
        assert bool(torch.isfinite(heatmaps).all() and torch.isfinite(depth).all())


@pytest.mark.parametrize("name", PRESETS)
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    out = model(torch.randn(2, 3, 64, 64))
    check_contract(out, 2, 64, 64, MODELS[name].stacks if MODELS[name].arch == "hourglass" else 1)
    loss = sum(hm.square().mean() + depth.square().mean() for hm, depth in out["stacks"])
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("name", FAST)
def test_channels_last_autocast_non_square(name: str) -> None:
    model = build_model(name).to(memory_format=torch.channels_last).eval()
    images = torch.randn(1, 3, 96, 64).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
    check_contract(out, 1, 96, 64, len(out["stacks"]))
    assert out["heatmaps"].dtype == torch.bfloat16


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'resnet19'.*hg1.*resnet_tiny"):
        build_model("resnet19")


def test_preset_rejects_unknown_arch() -> None:
    with pytest.raises(ValueError, match="'vit'"):
        ModelPreset("vit")


# seed_system.md §1.1, "3D total (hm+depth)" column, K = 16.
SEED_3D_TOTALS = {
    "resnet18": 15_380_576,
    "resnet34": 25_488_736,
    "resnet50": 34_003_552,
    "resnet101": 52_995_680,
    "resnet152": 68_639_328,
}


@pytest.mark.parametrize("name", SEED_3D_TOTALS)
def test_resnet_parameter_count_matches_seed(name: str) -> None:
    # Our count is exact; the acceptance bound is 2 %.
    assert count_parameters(build_on_meta(name)) == pytest.approx(SEED_3D_TOTALS[name], rel=0.02)
    assert count_parameters(build_on_meta(name)) == SEED_3D_TOTALS[name]


# seed_system.md §1.2: the upstream `2D` branch (16 heatmaps, no depth head).
SEED_HOURGLASS_2D = [
    (ModelPreset("hourglass", stacks=2, modules=2), 12_577_184),
    (ModelPreset("hourglass", stacks=1, modules=2), 6_429_840),
    (MODELS["hg8"], 25_434_112),
]


@pytest.mark.parametrize("preset, expected", SEED_HOURGLASS_2D, ids=["2x2x256", "1x2x256", "hg8"])
def test_hourglass_parameter_count_matches_seed(preset: ModelPreset, expected: int) -> None:
    assert params_2d(build_on_meta(preset)) == expected


def test_hourglass_building_blocks_match_seed() -> None:
    with torch.device("meta"):
        residual, hourglass = Residual(256, 256), Hourglass(4, 256, modules=2)
    assert count_parameters(residual) == 214_528
    assert count_parameters(hourglass) == 5_577_728


def test_tiny_hourglasses_form_a_size_axis() -> None:
    models = [build_on_meta(name) for name in ("hg1_tiny", "hg2_tiny", "hg4_tiny")]
    params = [count_parameters(m) for m in models]
    flops = [forward_flops(m, 64) for m in models]
    assert all(b > 1.6 * a for a, b in zip(params, params[1:]))
    assert all(b > 1.3 * a for a, b in zip(flops, flops[1:]))


def test_resnet50_flops_match_anchor() -> None:
    # anchors.md §3a: 7.25 GMAC true forward MACs at 256²; the counter gives 2 FLOPs per MAC.
    assert forward_flops(build_on_meta("resnet50"), 256) == pytest.approx(2 * 7.25e9, rel=0.05)


def test_flop_counter_counts_transposed_conv_per_input_pixel() -> None:
    deconv = nn.ConvTranspose2d(8, 4, kernel_size=4, stride=2, padding=1, bias=False)
    assert forward_flops(deconv, 10) == 2 * (10 * 10) * (4 * 4) * 8 * 4


def test_forward_flops_leaves_model_untouched() -> None:
    model = build_model("resnet_tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert forward_flops(model, 64) > 0
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 backbone state dict with an ImageNet-style ``fc`` head, as a local file."""
    torch.manual_seed(1)
    state = build_model("resnet18").backbone.state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path


def test_pretrained_backbone_loads(backbone_file: Path) -> None:
    saved = torch.load(backbone_file, weights_only=True)
    model = build_model("resnet18", pretrained=backbone_file)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


def test_pretrained_without_num_batches_tracked_loads(backbone_file: Path, tmp_path: Path) -> None:
    # Old torchvision checkpoints predate BatchNorm's num_batches_tracked buffer.
    state = {k: v for k, v in torch.load(backbone_file, weights_only=True).items()
             if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state}, tmp_path / "old.pth")
    model = build_model("resnet18", pretrained=tmp_path / "old.pth")
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])


def test_pretrained_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        build_model("resnet18", pretrained=path)


def test_pretrained_wrong_key_is_named(backbone_file: Path, tmp_path: Path) -> None:
    state = torch.load(backbone_file, weights_only=True)
    state["layer1.0.convX.weight"] = state.pop("layer1.0.conv1.weight")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight.*layer1\.0\.convX\.weight"):
        build_model("resnet18", pretrained=tmp_path / "bad.pth")


def test_pretrained_hourglass_is_rejected(backbone_file: Path) -> None:
    with pytest.raises(ValueError, match="resnet"):
        build_model("hg1_tiny", pretrained=backbone_file)


def import_timm():
    """timm, or a skip: it hard-imports torchvision, whose PyPI wheels are CUDA-linked."""
    try:
        import timm
    except Exception as error:  # ImportError, or torchvision failing to load its CUDA ops
        pytest.skip(f"timm cannot be imported here ({type(error).__name__}: {error}); parity not checked")
    return timm


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_timm_features_only_state_dict_loads(name: str, tmp_path: Path) -> None:
    timm = import_timm()
    features = timm.create_model(name, pretrained=False, features_only=True)
    torch.save(features.state_dict(), tmp_path / "timm.pth")
    model = build_model(name, pretrained=tmp_path / "timm.pth")
    assert torch.equal(model.backbone.conv1.weight, features.state_dict()["conv1.weight"])
