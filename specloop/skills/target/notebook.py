"""B2: executing the mini-dataset notebook headless in the target venv (nbclient there), and finding
the image outputs it saved."""

from __future__ import annotations

import json
from pathlib import Path

# Run by the target venv's interpreter: nbclient and the kernel are the project's, not specloop's.
EXECUTE = r"""
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=int(sys.argv[2]), iopub_timeout=60, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, path)
"""


def execute_argv(python: Path, notebook: Path, *, cwd: Path, timeout_s: int = 300) -> list[str]:
    """The command that executes `notebook` in place with `python`'s nbclient and kernel."""
    return [str(python), "-c", EXECUTE, str(notebook), str(timeout_s), str(cwd)]


def image_outputs(notebook: Path) -> int:
    """How many saved outputs hold an image (PNG, JPEG or SVG)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    kinds = ("image/png", "image/jpeg", "image/svg+xml")
    return sum(
        1
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
        for out in cell.get("outputs", [])
        if any(k in out.get("data", {}) for k in kinds)
    )


def errors(notebook: Path) -> list[str]:
    """`ename: evalue` of every error output saved in the notebook."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb.get("cells", [])
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
