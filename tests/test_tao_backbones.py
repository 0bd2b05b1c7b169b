"""TAO backbone names build equivalent timm ViTs with TAO's 4-level pyramid, and load staged weights
in RADIO's and DINOv2's own file layouts (files written here from randomly initialised models)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from specloop.errors import SpecloopError
from specloop.skills.aoi.spec import ExperimentSpec
from specloop.skills.changenet.backbones import TAO_BACKBONES, VitPyramid, build_tao_backbone
from specloop.skills.changenet.model import ChangeNet, build_model, create_backbone

# (embed dim, depth, patch) of the published architectures
SHAPES = {
    "c_radio_v2_vit_base_patch16_224": (768, 12, 16),
    "c_radio_v2_vit_large_patch16_224": (1024, 24, 16),
    "c_radio_v2_vit_huge_patch16_224": (1280, 32, 16),
    "c_radio_p1_vit_huge_patch16_224_mlpnorm": (1280, 32, 16),
    "c_radio_p2_vit_huge_patch16_224_mlpnorm": (1280, 32, 16),
    "c_radio_p3_vit_huge_patch16_224_mlpnorm": (1280, 32, 16),
    "vit_large_nvdinov2": (1024, 24, 14),
}
RADIO = "c_radio_v2_vit_base_patch16_224"


def test_every_registered_name_has_a_published_shape() -> None:
    assert set(TAO_BACKBONES) == set(SHAPES)


@pytest.mark.parametrize("name", list(TAO_BACKBONES))
def test_tao_name_builds_its_architecture_and_pyramid(name: str) -> None:
    dim, depth, patch = SHAPES[name]
    with torch.device("meta"):
        backbone = create_backbone(name)
        maps = backbone(torch.empty(2, 3, 224, 224))
    assert isinstance(backbone, VitPyramid)
    trunk = backbone.trunk
    assert (trunk.embed_dim, len(trunk.blocks), trunk.patch_embed.patch_size[0]) == (dim, depth, patch)
    assert backbone.out_indices == [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1]
    grid = 224 // patch
    assert [tuple(m.shape) for m in maps] == [
        (2, dim, 4 * grid, 4 * grid),
        (2, dim, 2 * grid, 2 * grid),
        (2, dim, grid, grid),
        (2, dim, grid, grid),
    ]
    assert backbone.feature_info.channels() == [dim] * 4
    if "radio" in name:  # C-RADIO: a class token and 7 registers, position embedding over patches only
        assert trunk.num_prefix_tokens == 8 and trunk.pos_embed.shape[1] == grid * grid
    if name.endswith("_mlpnorm"):
        assert not isinstance(trunk.blocks[0].mlp.norm, torch.nn.Identity)


def test_radio_base_learnable_head_trains_on_small_pairs() -> None:
    spec = ExperimentSpec.model_validate({"model": {"backbone": {"type": RADIO}}})
    model = build_model(spec)
    g, t = torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32)  # two 32 px lights joined
    out = model(g, t)
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1])).backward()
    assert model.backbone.trunk.blocks[0].attn.qkv.weight.grad is not None
    assert model.diff[0].body[0].weight.grad is not None


def _small(name: str, path: Path | None = None, *, seed: int = 0, **arch: object) -> VitPyramid:
    """A 2-block variant; a loaded one starts from other random weights than the source (seed 0)."""
    torch.manual_seed(seed if path is None else seed + 1)
    return build_tao_backbone(name, path, {"depth": 2, **arch})


def _radio_state(trunk: torch.nn.Module, prefix: str, *, with_gamma: bool = True) -> dict[str, torch.Tensor]:
    """A timm RADIO trunk's weights in RADIO's own key layout (bias-free linear patch embedding,
    class token and registers in one tensor), with the teacher parts RADIO files also carry."""
    sd = trunk.state_dict()
    dim = sd["patch_embed.proj.weight"].shape[0]
    out = {
        f"{prefix}patch_generator.embedder.weight": sd["patch_embed.proj.weight"].reshape(dim, -1),
        f"{prefix}patch_generator.pos_embed": sd["pos_embed"],
        f"{prefix}patch_generator.cls_token.token": torch.cat([sd["cls_token"][0], sd["reg_token"][0]]),
    }
    for k, v in sd.items():
        if k.startswith("blocks.") and (with_gamma or not k.endswith(".gamma")):
            out[prefix + k] = v
    return out


def _same_features(a: VitPyramid, b: VitPyramid, size: tuple[int, int] = (64, 32)) -> bool:
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fa = a.trunk.forward_intermediates(x, intermediates_only=True)
        fb = b.trunk.forward_intermediates(x, intermediates_only=True)
    return all(torch.allclose(p, q, atol=1e-5) for p, q in zip(fa, fb, strict=True))


def _zero_patch_bias(backbone: VitPyramid) -> VitPyramid:
    with torch.no_grad():  # RADIO's patch embedding has no bias
        backbone.trunk.patch_embed.proj.bias.zero_()
        backbone.trunk.blocks[0].ls1.gamma.uniform_(0.5, 1.5)  # make layer scale matter
    return backbone.eval()


def test_hf_safetensors_layout_loads_into_c_radio(tmp_path: Path) -> None:
    src = _zero_patch_bias(_small(RADIO))
    state = _radio_state(src.trunk, "radio_model.model.")
    state |= {
        "radio_model.input_conditioner.norm_mean": torch.zeros(3, 1, 1),
        "radio_model.summary_idxs": torch.tensor([0, 1]),
        "radio_model.adaptors.clip.feat_mlp.fc1.weight": torch.zeros(4, 768),
    }
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    assert not _same_features(src, _zero_patch_bias(_small(RADIO, seed=1)))
    assert _same_features(src, _small(RADIO, path).eval())


def test_radio_pth_tar_layout_with_args_and_heads_loads(tmp_path: Path) -> None:
    src = _zero_patch_bias(_small(RADIO))
    state = _radio_state(src.trunk, "base_model.")
    state |= {"input_conditioner.norm_std": torch.ones(3, 1, 1), "_heads.0.weight": torch.zeros(2, 768)}
    path = tmp_path / "C-RADIOv2_B.pth"
    torch.save({"args": argparse.Namespace(model="vit_base_patch16_224"), "state_dict_ema": state}, path)
    assert _same_features(src, _small(RADIO, path).eval())


def test_checkpoint_without_layer_scale_is_the_same_network(tmp_path: Path) -> None:
    src = _small(RADIO, init_values=0).eval()  # 0 (falsy): blocks without layer scale
    assert isinstance(src.trunk.blocks[0].ls1, torch.nn.Identity)
    with torch.no_grad():
        src.trunk.patch_embed.proj.bias.zero_()
    path = tmp_path / "no_ls.safetensors"
    save_file(_radio_state(src.trunk, "radio_model.model.", with_gamma=False), str(path))
    loaded = _small(RADIO, path).eval()
    assert torch.equal(loaded.trunk.blocks[0].ls1.gamma, torch.ones(768))
    assert _same_features(src, loaded)


def test_dinov2_pth_layout_loads_into_nvdinov2(tmp_path: Path) -> None:
    src = _small("vit_large_nvdinov2").eval()
    state = {f"backbone.{k}": v for k, v in src.trunk.state_dict().items()}
    state["backbone.mask_token"] = torch.zeros(1, 1024)
    path = tmp_path / "nvdinov2.pth"
    torch.save({"model": state}, path)
    assert _same_features(src, _small("vit_large_nvdinov2", path).eval(), size=(56, 28))


def test_weights_of_another_size_name_the_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "base.safetensors"
    save_file(_radio_state(_small(RADIO).trunk, "radio_model.model."), str(path))
    with pytest.raises(
        SpecloopError, match=r"does not fit c_radio_v2_vit_large_patch16_224 \(size mismatch"
    ) as e:
        build_tao_backbone("c_radio_v2_vit_large_patch16_224", path, {"depth": 2})
    assert e.value.rule == "backbone-weights"


def test_unreadable_or_foreign_weight_files_are_one_sentence(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecloopError, match="is not a readable weight file") as e:
        _small(RADIO, junk)
    assert e.value.rule == "backbone-weights"
    foreign = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3)}, str(foreign))
    with pytest.raises(
        SpecloopError, match=r"is not a c_radio_v2_vit_base_patch16_224 checkpoint \(missing key"
    ):
        _small(RADIO, foreign)


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("fan_small_12_p4_hybrid", "c_radio_v2_vit_base_patch16_224"),
        ("fan_large_16_p4_hybrid", "c_radio_v2_vit_large_patch16_224"),
    ],
)
def test_fan_names_fail_at_build_naming_the_nearest_supported(name: str, nearest: str) -> None:
    spec = ExperimentSpec.model_validate({"model": {"backbone": {"type": name}}})
    with torch.device("meta"), pytest.raises(SpecloopError) as e:
        build_model(spec)
    assert e.value.rule == "unsupported-backbone"
    assert f"use {nearest!r}" in str(e.value) and str(e.value).count(".") >= 1 and "\n" not in str(e.value)


def test_frozen_trunk_keeps_its_weights_and_trains_the_pyramid() -> None:
    model = ChangeNet(RADIO, freeze_backbone=True)
    g = torch.randn(2, 3, 32, 32)
    torch.nn.functional.cross_entropy(model(g, g.flip(2)), torch.tensor([0, 1])).backward()
    assert all(p.grad is None for p in model.backbone.trunk.parameters())
    assert model.backbone.necks[0][0].weight.grad is not None
