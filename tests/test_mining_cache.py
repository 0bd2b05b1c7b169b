"""The parquet embedding cache: hits on a second call, misses after a file or the embedder changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from specloop.skills.mining import EmbeddingCache, PixelEmbedder


class Counting:
    """A real embedder that also counts the items it was asked to embed."""

    def __init__(self, inner: PixelEmbedder) -> None:
        self.inner = inner
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim
        self.embedded = 0

    def embed(self, items: Sequence[Sequence[Path]]) -> np.ndarray:
        self.embedded += len(items)
        return self.inner.embed(items)


def _images(folder: Path, n: int) -> list[list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    items = []
    for i in range(n):
        f = folder / f"s{i}.png"
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(f)
        items.append([f])
    return items


def test_second_call_hits_and_embeds_nothing(tmp_path: Path) -> None:
    items = _images(tmp_path / "img", 6)
    path = tmp_path / "cache" / "embeddings.parquet"
    emb = Counting(PixelEmbedder(side=8, progress=False))
    first = EmbeddingCache(path).embed(items, emb)
    assert emb.embedded == 6 and path.is_file()

    cache = EmbeddingCache(path)  # a new process reads the file
    second = cache.embed(items, emb)
    assert emb.embedded == 6 and (cache.hits, cache.misses) == (6, 0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, PixelEmbedder(side=8, progress=False).embed(items), atol=1e-6)


def test_changed_file_and_changed_embedder_miss(tmp_path: Path) -> None:
    items = _images(tmp_path / "img", 4)
    cache = EmbeddingCache(tmp_path / "e.parquet")
    emb = Counting(PixelEmbedder(side=8, progress=False))
    before = cache.embed(items, emb)

    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(items[2][0])
    after = cache.embed(items, emb)
    assert (cache.hits, cache.misses) == (3, 1) and emb.embedded == 5
    assert not np.allclose(before[2], after[2])
    np.testing.assert_array_equal(before[[0, 1, 3]], after[[0, 1, 3]])

    other = Counting(PixelEmbedder(side=4, progress=False))
    cache.embed(items, other)
    assert cache.misses == 4 and other.embedded == 4
    # both embedders' entries persist side by side
    table = pq.read_table(tmp_path / "e.parquet")
    assert len(set(table.column("embedder").to_pylist())) == 2
    reloaded = EmbeddingCache(tmp_path / "e.parquet")
    reloaded.embed(items, emb)
    reloaded.embed(items, other)
    assert reloaded.misses == 0 and len(reloaded) == 5 + 4


def test_same_content_under_two_paths_is_embedded_once(tmp_path: Path) -> None:
    items = _images(tmp_path / "a", 3)
    copy = tmp_path / "b" / "copy.png"
    copy.parent.mkdir()
    copy.write_bytes(items[0][0].read_bytes())
    emb = Counting(PixelEmbedder(side=8, progress=False))
    vecs = EmbeddingCache(tmp_path / "e.parquet").embed([*items, [copy]], emb)
    assert emb.embedded == 3
    np.testing.assert_array_equal(vecs[0], vecs[3])


def test_unreadable_cache_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    items = _images(tmp_path / "img", 2)
    path = tmp_path / "e.parquet"
    path.write_text("not parquet")
    cache = EmbeddingCache(path)
    cache.embed(items, PixelEmbedder(side=8, progress=False))
    assert cache.misses == 2 and any("unreadable" in w for w in cache.warnings)
    assert len(EmbeddingCache(path)) == 2
