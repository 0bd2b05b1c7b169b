"""Mining: image embeddings, an embedding cache, and k-NN neighbour mining with faiss."""

from specloop.skills.mining.cache import EmbeddingCache, embedder_id, item_key
from specloop.skills.mining.embedders import (
    DEFAULT_SIGLIP_ID,
    Embedder,
    LightsJoin,
    PixelEmbedder,
    SiglipNotFound,
    find_siglip,
    get_embedder,
    resolve_embedder,
)
from specloop.skills.mining.knn import INDEXES, build_index, knn, numpy_topk, recall_at_k, search
from specloop.skills.mining.mine import MiningResult, Selection, mine, random_draw, select
from specloop.skills.mining.precheck import label_precheck, yield_check

__all__ = [
    "DEFAULT_SIGLIP_ID",
    "INDEXES",
    "Embedder",
    "EmbeddingCache",
    "LightsJoin",
    "MiningResult",
    "PixelEmbedder",
    "Selection",
    "SiglipNotFound",
    "build_index",
    "embedder_id",
    "find_siglip",
    "get_embedder",
    "item_key",
    "knn",
    "label_precheck",
    "mine",
    "numpy_topk",
    "random_draw",
    "recall_at_k",
    "resolve_embedder",
    "search",
    "select",
    "yield_check",
]
