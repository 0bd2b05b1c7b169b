"""What every agent of one run shares: where the run lives, its transcript, its console."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from rich.console import Console

from specloop.ledger import state as ledger_state
from specloop.ledger.transcript import Transcript
from specloop.llm.redaction import collect_secrets
from specloop.skills.aoi.layout import Workspace

LOOP_LOG = "loop_log.jsonl"
TRANSCRIPT = "transcript.jsonl"


@dataclass
class RunContext:
    run_dir: Path
    workspace: Workspace
    transcript: Transcript
    console: Console = field(default_factory=lambda: Console(stderr=True))
    progress: bool = True
    llm: Any = None  # the chat-model seam: None means every agent runs its offline policy

    @classmethod
    def open(cls, run_dir: Path, workspace: Path, *, progress: bool = True) -> RunContext:
        ws = Workspace(workspace.resolve())
        env_values = dotenv_values(ws.env_file) if ws.env_file.is_file() else {}
        secrets = collect_secrets(env_values, os.environ)
        return cls(run_dir, ws, Transcript(run_dir / TRANSCRIPT, secrets), progress=progress)

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOOP_LOG

    def state(self) -> dict[str, Any]:
        return ledger_state.load(self.run_dir)

    def config(self) -> dict[str, Any]:
        return self.state()["config"]

    def iter_dir(self, label: str) -> Path:
        return self.run_dir / label
