"""SigLIP loading offline from a tiny model the test builds, and the missing-weights message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

from specloop.errors import SpecloopError
from specloop.skills.mining import SiglipNotFound, get_embedder, resolve_embedder


def _tiny_siglip(folder: Path, seed: int = 0) -> Path:
    cfg = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(seed)
    SiglipVisionModel(cfg).save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_siglip(tmp_path_factory.mktemp("siglip") / "tiny-siglip")


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the Hugging Face cache at an empty folder, so nothing on this machine is found by accident."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SPECLOOP_SIGLIP_PATH", raising=False)
    return cache


def _items(tmp_path: Path, n: int, lights: int = 1) -> list[list[Path]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        files = []
        for light in range(lights):
            f = tmp_path / f"img{i}_{light}.png"
            Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(f)
            files.append(f)
        items.append(files)
    return items


def test_siglip_loads_offline_and_embeds_normalised(tiny_siglip: Path, tmp_path: Path) -> None:
    emb = get_embedder("siglip", siglip_path=tiny_siglip, device="cpu", progress=False)
    assert emb.name == "siglip" and emb.dim == 32
    items = _items(tmp_path, 5)
    vecs = emb.embed(items)
    assert vecs.shape == (5, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    # the model's own pooled output, not something else: compare with a direct forward pass
    model = SiglipVisionModel.from_pretrained(tiny_siglip, local_files_only=True).eval()
    proc = SiglipImageProcessor.from_pretrained(tiny_siglip, local_files_only=True)
    with torch.inference_mode():
        pooled = model(**proc(images=[Image.open(f[0]).convert("RGB") for f in items], return_tensors="pt"))
    ref = pooled.pooler_output.numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])


def test_siglip_version_names_weights_and_join(tiny_siglip: Path, tmp_path: Path) -> None:
    a = get_embedder("siglip", siglip_path=tiny_siglip, device="cpu", progress=False)
    b = get_embedder(
        "siglip", siglip_path=tiny_siglip, lights_join=("grid", None), device="cpu", progress=False
    )
    other = _tiny_siglip(tmp_path / "other", seed=1)
    c = get_embedder("siglip", siglip_path=other, device="cpu", progress=False)
    assert len({a.version, b.version, c.version}) == 3
    # multi-light items are joined before embedding: two lights differ from either light alone
    items = _items(tmp_path, 2, lights=2)
    joined = a.embed(items)
    single = a.embed([[f[0]] for f in items])
    assert not np.allclose(joined, single)


def test_siglip_found_in_hugging_face_cache(tiny_siglip: Path, empty_hf_cache: Path) -> None:
    repo = empty_hf_cache / "models--google--siglip-base-patch16-224"
    commit = "0" * 40
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in tiny_siglip.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    emb = get_embedder("siglip", device="cpu", progress=False)
    assert emb.dim == 32
    assert resolve_embedder("siglip")[0] == "siglip"


def test_missing_siglip_weights_say_where_and_how(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-such-folder"
    with pytest.raises(SiglipNotFound) as err:
        get_embedder("siglip", siglip_path=nowhere, progress=False)
    msg = str(err.value)
    assert str(nowhere) in msg and "Hugging Face cache" in msg and "google/siglip-base-patch16-224" in msg
    assert "--siglip-path" in msg and "\n" not in msg
    assert isinstance(err.value, SpecloopError)


def test_resolve_embedder_falls_back_with_a_reason(tmp_path: Path) -> None:
    chosen, reason = resolve_embedder("siglip", siglip_path=tmp_path / "nope")
    assert chosen == "pixels" and "SigLIP weights not found" in reason and "pixel" in reason
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    chosen, reason = resolve_embedder("siglip", fallback_checkpoint=ckpt)
    assert chosen == f"changenet:{ckpt}" and str(ckpt) in reason
    with pytest.raises(SpecloopError, match="unknown embedder"):
        resolve_embedder("clip")
    with pytest.raises(SpecloopError, match="not found"):
        resolve_embedder(f"timm:resnet18@{tmp_path / 'missing.safetensors'}")
