"""ChangeNet heads, losses, backbones, spec pairing, data joining/sampling/augmentation (no data files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from specloop.errors import SpecError, SpecloopError
from specloop.skills.aoi.images import join_lights
from specloop.skills.aoi.spec import DatasetClassifyConfig, ExperimentSpec, load_spec
from specloop.skills.changenet.data import EpochSampler, ImageLayout, Preprocess, join_tiles
from specloop.skills.changenet.model import ChangeNet, ContrastiveLoss, build_loss, build_model
from specloop.skills.changenet.runtime import pick_device


def _spec(**kw: object) -> ExperimentSpec:
    return ExperimentSpec.model_validate(kw)


def test_learnable_head_shapes_loss_and_scores() -> None:
    spec = _spec(model={"backbone": {"type": "resnet18"}, "classify": {"learnable_difference_modules": 3}})
    model = build_model(spec)
    assert model.n_scales == 3 and model.channels == [128, 256, 512]
    g, t = torch.randn(4, 3, 64, 32), torch.randn(4, 3, 64, 32)
    out = model(g, t)
    assert out.shape == (4, 2)
    loss = build_loss(spec)(out, torch.tensor([0, 1, 0, 1]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.diff[0].body[0].weight.grad is not None
    s = model.scores(out)
    assert s.shape == (4,) and bool(((s >= 0) & (s <= 1)).all())
    assert torch.allclose(s, out.softmax(1)[:, 1])
    model.eval()
    assert model.embed(g).shape == (4, 512)


def test_cls_weight_weights_the_defect_class() -> None:
    spec = _spec(train={"classify": {"cls_weight": [1.0, 10.0]}})
    loss = build_loss(spec)
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    # both rows predict PASS; weighted mean over (PASS row w=1, defect row w=10)
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), reduction="none")
    assert loss(logits, torch.tensor([0, 1])).item() == pytest.approx(((ce[0] + 10 * ce[1]) / 11).item())


def test_euclidean_head_distance_and_contrastive_loss() -> None:
    spec = _spec(
        model={"classify": {"difference_module": "euclidean", "embedding_vectors": 7}},
        train={"classify": {"loss": "contrastive"}},
    )
    model = build_model(spec)
    g = torch.randn(3, 3, 32, 32)
    d = model(g, g.clone())
    assert d.shape == (3,)
    assert torch.allclose(d, torch.zeros(3), atol=1e-3)  # identical pair: distance ~0
    assert model.scores(d).shape == (3,)
    loss = build_loss(spec)
    assert isinstance(loss, ContrastiveLoss) and loss.margin == 2.0
    # PASS at d=.5 -> .25; defect at d=1.5 -> (2-1.5)^2 = .25; defect beyond the margin -> 0
    got = loss(torch.tensor([0.5, 1.5, 3.0]), torch.tensor([0, 1, 1]))
    assert got.item() == pytest.approx((0.25 + 0.25 + 0.0) / 3)


def test_spec_pairing_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("model:\n  classify:\n    difference_module: learnable\n")
    with pytest.raises(SpecError, match=r"must be trained with train.classify.loss 'ce'"):
        load_spec(path, ["train.classify.loss=contrastive"])
    with pytest.raises(SpecError, match="'contrastive', not 'ce'"):
        load_spec(path, ["model.classify.difference_module=euclidean"])


def test_freeze_backbone_keeps_backbone_fixed() -> None:
    model = ChangeNet("resnet18", freeze_backbone=True, n_scales=2)
    model.train()
    assert not model.backbone.training and model.diff.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    out = model(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())


def test_unknown_backbone_is_one_sentence() -> None:
    with pytest.raises(SpecloopError, match=r"model.backbone.type 'resnet_nope' is not a timm model name"):
        build_model(_spec(model={"backbone": {"type": "resnet_nope"}}))


def test_backbone_weights_load_from_a_local_file(tmp_path: Path) -> None:
    ref = timm.create_model("resnet18", pretrained=False)
    torch.nn.init.constant_(ref.conv1.weight, 0.123)
    weights = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), weights)
    spec = _spec(model={"backbone": {"type": "resnet18", "pretrained_backbone_path": str(weights)}})
    model = build_model(spec)
    assert torch.allclose(model.backbone.conv1.weight, torch.full_like(model.backbone.conv1.weight, 0.123))
    missing = _spec(
        model={"backbone": {"type": "resnet18", "pretrained_backbone_path": str(tmp_path / "no.pth")}}
    )
    with pytest.raises(SpecloopError, match="does not exist"):
        build_model(missing)


def test_cuda_without_gpu_is_an_input_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SpecloopError, match=r"train.device is 'cuda' but PyTorch sees no CUDA GPU"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


@pytest.mark.parametrize("concat", ["linear", "grid"])
def test_join_tiles_matches_the_contract_join(concat: str) -> None:
    rng = np.random.default_rng(0)
    lights = [rng.integers(0, 255, (8, 6, 3), dtype=np.uint8) for _ in range(3)]
    layout = ImageLayout(
        ("a", "b", "c"), 8, 6, ".png", concat, {"x": 2, "y": 2} if concat == "grid" else None
    )
    x = torch.from_numpy(np.stack([li.transpose(2, 0, 1) for li in lights]))[None]
    got = join_tiles(x, layout)[0].permute(1, 2, 0).numpy()
    want = join_lights(lights, concat, layout.grid_map)
    assert np.array_equal(got, want)


def test_epoch_sampler_shards_and_weights() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    shards = [list(EpochSampler(labels, fpratio=0.0, seed=1, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 50
    assert sorted(shards[0] + shards[1]) == list(range(100))
    weighted = list(EpochSampler(labels, fpratio=1 / 9, seed=1))  # PASS total weight 10 == defect total 10
    share = float(labels[weighted].float().mean())
    assert 0.35 < share < 0.65
    s = EpochSampler(labels, fpratio=0.0, seed=1)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(2)
    assert a != list(s)


def test_augmentation_is_identical_for_golden_and_test() -> None:
    ds = DatasetClassifyConfig.model_validate(
        {
            "input_map": {"a": 0, "b": 1},
            "num_input": 2,
            "image_width": 16,
            "image_height": 16,
            "augmentation_config": {
                "augment": True,
                "random_flip": {"hflip_probability": 0.5, "vflip_probability": 0.5},
                "random_rotate": {"enable": True, "rotate_probability": 1.0},
                "random_color": {"color_probability": 1.0},
                "with_scale_random_crop": {"enable": True, "scale_range": [1.0, 1.3]},
                "with_random_blur": True,
                "with_random_crop": True,
            },
        }
    )
    layout = ImageLayout.from_config(ds)
    side = torch.randint(0, 255, (6, 1, 2, 3, 16, 16), dtype=torch.uint8)
    tiles = torch.cat([side, side], dim=1)  # golden == test
    golden, test = Preprocess(ds, layout, augment=True, seed=3)(tiles)
    assert golden.shape == (6, 3, 32, 16) and golden.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(golden, test)
    plain, _ = Preprocess(ds, layout, augment=False)(tiles)
    assert not torch.equal(golden, plain)  # something was applied
    # without augmentation: exact (x / 255 - mean) / std
    want = (
        tiles[:, 0, 0].float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(plain[:, :, :16], want, atol=1e-5)
