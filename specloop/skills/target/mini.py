"""B2: the mini dataset's description (`mini_dataset.md`) from the manifest `scripts/make_mini.py` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError

MANIFEST = "manifest.json"


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise SpecloopError(f"{path}: the mini dataset has no manifest; scripts/make_mini.py writes it.")
    return json.loads(path.read_text(encoding="utf-8"))


def count_files(root: Path) -> dict[str, int]:
    """Files per split on disk (not what the manifest claims)."""
    return {
        split.name: sum(1 for f in split.rglob("*") if f.is_file())
        for split in sorted(root.iterdir())
        if split.is_dir()
    }


def render_mini_md(
    project: str,
    manifest: dict[str, Any],
    on_disk: dict[str, int],
    *,
    command: str,
    metric: str,
    notebook: str,
) -> str:
    counts: dict[str, dict[str, int]] = manifest.get("counts") or {}
    classes = [str(c) for c in manifest.get("classes") or sorted({k for s in counts.values() for k in s})]
    total = sum(on_disk.values())
    lines = [
        f"# {project}: the mini dataset",
        "",
        f"- built by: `{command}` (stratified by class, fixed seed {manifest.get('seed')}, "
        f"{manifest.get('per_class', 'the family default')} per class)",
        f"- source: {manifest.get('source', 'see the manifest')}",
        f"- layout: `data/mini/{manifest.get('layout', '')}`",
        f"- samples: {total} files ({', '.join(f'{k} {v}' for k, v in on_disk.items())})",
        f"- classes ({len(classes)}): {', '.join(classes)}",
        f"- metric: {metric}",
        f"- notebook: `{notebook}` (executed headless; its saved outputs show samples and the class histogram)",
        "",
    ]
    if counts:
        splits = list(counts)
        lines += [
            "## Distribution",
            "",
            "| class | " + " | ".join(splits) + " |",
            "|---|" + "---|" * len(splits),
            *[f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in splits) + " |" for c in classes],
            "",
        ]
    lines += [
        "## How to use it",
        "",
        "- 1-epoch check: `python scripts/train.py --data data/mini --epochs 1`",
        "- fast smoke run: `python scripts/train.py --data data/mini --fast-dev-run`",
        "- rebuild: `" + command + "` (the same seed gives the same files)",
        "- the full dataset has the same layout; train on it with `--data DIR`",
    ]
    return "\n".join(lines) + "\n"
