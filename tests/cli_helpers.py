"""Running the real `specloop` entry point and headless Chromium from tests, and editing a copied
workspace's spec."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CHROMIUM = Path("/usr/bin/chromium")


def specloop_cli(
    *args: str,
    timeout: float = 300,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    columns: int = 200,
) -> subprocess.CompletedProcess[str]:
    """`python -m specloop ARGS` with its output captured and no terminal on stdin (unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "specloop", *args],
        capture_output=True,
        text=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env={**(env if env is not None else os.environ), "COLUMNS": str(columns)},
        timeout=timeout,
        check=False,
    )


def set_spec_keys(ws: Path, values: Mapping[str, Any]) -> None:
    """Set dotted keys in the workspace's `specs/baseline_spec.yaml`."""
    spec_path = ws / "specs" / "baseline_spec.yaml"
    conf = OmegaConf.load(spec_path)
    for key, value in values.items():
        OmegaConf.update(conf, key, value)
    OmegaConf.save(conf, spec_path)


def chromium(url: str, profile: Path, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on `url` with a fresh profile and none of its background connections
    (this machine's network is closed); `extra` adds e.g. `--screenshot=PATH` or `--dump-dom`."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
