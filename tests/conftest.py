"""Shared fixtures. `tiny_workspace` is synthesized once per session; copy it before modifying it."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloop.skills.aoi.synth import synthesize_workspace


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny synthetic DEFT workspace (seed 0). Read-only: copy it to change anything."""
    root = tmp_path_factory.mktemp("synth") / "tiny_ws"
    synthesize_workspace(root, size="tiny", seed=0, progress=False)
    return root
