"""A parquet cache of embeddings, keyed by image content and embedder identity.

One row per (item key, embedder id): the item key is a sha256 over the content hashes of every
light file of the item (so a renamed or copied file still hits, and a changed file misses); the
embedder id is `name@version`, which names the model, its weights and the light join. A pool is
therefore embedded once across iterations and runs. Writes go to a temporary file then replace
the cache, so a killed run never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from specloop.skills.mining.embedders.base import Embedder, Item, file_sha256, progress_bar


def embedder_id(embedder: Embedder) -> str:
    return f"{embedder.name}@{embedder.version}"


def item_key(files: Item) -> str:
    """sha256 over the content hashes of the item's light files, in light order."""
    h = hashlib.sha256()
    for f in files:
        h.update(file_sha256(Path(f)).encode())
        h.update(b"\n")
    return h.hexdigest()


class _Table:
    """The vectors of one embedder: key → row, rows in a growing float32 matrix."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index: dict[str, int] = {}
        self.blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = np.zeros((0, dim), dtype=np.float32)

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = (
                np.concatenate(self.blocks, axis=0) if self.blocks else np.zeros((0, self.dim), np.float32)
            )
            self.blocks = [self._matrix]
        return self._matrix

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        new = [i for i, k in enumerate(keys) if k not in self.index]
        if not new:
            return
        start = len(self.index)
        for offset, i in enumerate(new):
            self.index[keys[i]] = start + offset
        if self._matrix is not None:
            self.blocks = [self._matrix]
        self.blocks.append(np.asarray(vectors[new], dtype=np.float32))
        self._matrix = None


class EmbeddingCache:
    """Embeddings on disk at `path` (parquet; created on first save, parent folders too).

    `embed(items, embedder)` returns one vector per item, embedding only the items whose key is
    not yet cached for that embedder; `hits` and `misses` tell what the last call did.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self.warnings: list[str] = []
        self._tables: dict[str, _Table] | None = None
        self._dirty = False

    def _load(self) -> dict[str, _Table]:
        if self._tables is not None:
            return self._tables
        self._tables = {}
        if not self.path.is_file():
            return self._tables
        try:
            table = pq.read_table(self.path, columns=["key", "embedder", "vector"])
        except (pa.ArrowException, OSError, KeyError) as exc:
            self.warnings.append(f"{self.path}: unreadable embedding cache ignored and rebuilt ({exc}).")
            return self._tables
        embedders = table.column("embedder").to_pylist()
        keys = table.column("key").to_pylist()
        vectors = table.column("vector").combine_chunks()
        for eid in dict.fromkeys(embedders):
            rows = [i for i, e in enumerate(embedders) if e == eid]
            sub = vectors.take(pa.array(rows))
            dim = len(sub[0]) if len(sub) else 0
            mat = sub.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(rows), dim)
            t = _Table(dim)
            t.add([keys[i] for i in rows], mat)
            self._tables[eid] = t
        return self._tables

    def __len__(self) -> int:
        return sum(len(t.index) for t in self._load().values())

    def lookup(self, keys: Sequence[str], eid: str) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, vectors with zero rows where not found) for `keys` under embedder `eid`."""
        table = self._load().get(eid)
        found = np.zeros(len(keys), dtype=bool)
        if table is None:
            return found, np.zeros((len(keys), 0), dtype=np.float32)
        rows = np.array([table.index.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(keys), table.dim), dtype=np.float32)
        out[found] = table.matrix()[rows[found]]
        return found, out

    def put(self, keys: Sequence[str], eid: str, vectors: np.ndarray) -> None:
        tables = self._load()
        table = tables.setdefault(eid, _Table(int(vectors.shape[1])))
        table.add(list(keys), vectors)
        self._dirty = True

    def keys_for(self, items: Sequence[Item], progress: bool = False) -> list[str]:
        keys: list[str] = []
        with progress_bar(progress and len(items) > 0) as bar:
            task = bar.add_task("hashing images", total=len(items))
            for files in items:
                keys.append(item_key(files))
                bar.advance(task)
        return keys

    def embed(self, items: Sequence[Item], embedder: Embedder, *, progress: bool = False) -> np.ndarray:
        """Vectors for `items`, from the cache where present; new ones are embedded, stored and saved."""
        eid = embedder_id(embedder)
        keys = self.keys_for(items, progress)
        found, vectors = self.lookup(keys, eid)
        self.hits = int(found.sum())
        missing = np.flatnonzero(~found)
        self.misses = len(missing)
        if not len(missing):
            return vectors if vectors.shape[1] else np.zeros((len(items), embedder.dim), dtype=np.float32)
        # identical content under two paths is embedded once
        unique: dict[str, int] = {}
        for i in missing:
            unique.setdefault(keys[i], int(i))
        fresh = embedder.embed([items[i] for i in unique.values()])
        self.put(list(unique), eid, fresh)
        self.save()
        _, vectors = self.lookup(keys, eid)
        return vectors

    def save(self) -> None:
        """Write every entry to a temporary parquet file, then replace the cache with it."""
        if not self._dirty:
            return
        keys: list[str] = []
        eids: list[str] = []
        vectors: list[pa.Array] = []
        for eid, table in self._load().items():
            ordered = sorted(table.index, key=table.index.__getitem__)
            keys.extend(ordered)
            eids.extend([eid] * len(ordered))
            mat = table.matrix()
            flat = pa.array(mat.reshape(-1), type=pa.float32())
            offsets = pa.array(
                np.arange(0, mat.size + 1, max(table.dim, 1), dtype=np.int32)[: len(ordered) + 1]
            )
            vectors.append(pa.ListArray.from_arrays(offsets, flat))
        vector_col = pa.chunked_array(vectors, type=pa.list_(pa.float32()))
        out = pa.table({"key": keys, "embedder": eids, "vector": vector_col})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".embeddings.", suffix=".parquet.tmp", dir=self.path.parent)
        os.close(fd)
        try:
            pq.write_table(out, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._dirty = False
