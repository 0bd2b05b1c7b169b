"""What every agent of one run shares: where the run lives, its transcript, its console, its model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from rich.console import Console

from specloop.ledger import state as ledger_state
from specloop.ledger.layout import RunLayout
from specloop.ledger.redaction import collect_secrets
from specloop.ledger.transcript import Transcript
from specloop.llm import LLM, Budget, LLMCall, get_llm, load_settings
from specloop.skills.aoi.layout import Workspace
from specloop.skills.contracts import ContractSet, load_contracts

MODEL_CALL = "model_call"


def no_tokens() -> dict[str, Any]:
    return {"input": 0, "output": 0, "cost_usd": 0.0, "calls": 0}


@dataclass
class RunContext:
    run_dir: Path
    workspace: Workspace
    transcript: Transcript
    contracts: ContractSet
    pipeline: str = "deft"
    console: Console = field(default_factory=lambda: Console(stderr=True))
    progress: bool = True
    llm_config: str | None = None  # None or "offline": every agent runs its offline policy
    record_to: Path | None = None  # a cassette that every model call is appended to
    stage: tuple[str, str] = ("baseline", "preflight")  # (iteration, stage) being run
    tokens: dict[str, Any] = field(default_factory=no_tokens)  # this stage's model usage
    gate_answer: dict[str, Any] | None = None  # what the person (or --yes) answered at the gate
    _llm: LLM | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls, run_dir: Path, workspace: Path, *, progress: bool = True, options: dict[str, Any] | None = None
    ) -> RunContext:
        ws = Workspace(workspace.resolve())
        env_values = dotenv_values(ws.env_file) if ws.env_file.is_file() else {}
        secrets = collect_secrets(env_values, os.environ)
        options = options or {}
        record = options.get("record")
        specs = options.get("specs")
        state_file = ledger_state.state_path(run_dir)
        pipeline = ledger_state.load(run_dir).get("pipeline", "deft") if state_file.is_file() else "deft"
        return cls(
            run_dir,
            ws,
            Transcript(RunLayout(run_dir).transcript, secrets),
            load_contracts([Path(p) for p in specs] if specs else None),
            pipeline,
            progress=progress,
            llm_config=options.get("llm"),
            record_to=Path(record) if record else None,
        )

    @property
    def llm(self) -> LLM | None:
        """The run's chat model, or None when it runs offline. Built on first use, with the
        budget already spent by earlier stages (read back from the transcript) charged to it."""
        if self.llm_config in (None, "offline"):
            return None
        if self._llm is None:
            settings = load_settings(self.llm_config, workspace=self.workspace.root)
            calls = [e["data"] for e in self.transcript.entries() if e["kind"] == MODEL_CALL]
            budget = Budget(
                max_tokens=settings.budget_tokens,
                max_usd=settings.budget_usd,
                spent_tokens=sum(c["input_tokens"] + c["output_tokens"] for c in calls),
                spent_usd=sum(c["cost_usd"] for c in calls),
            )
            self._llm = get_llm(
                self.llm_config,
                workspace=self.workspace.root,
                budget=budget,
                recorder=self._on_call,
                record_to=self.record_to,
                settings=settings,
            )
        return self._llm

    def _on_call(self, call: LLMCall) -> None:
        data = {k: v for k, v in call.to_dict().items() if k not in ("agent", "stage")}
        self.transcript.record(call.agent, MODEL_CALL, call.stage, self.stage[0], **data)
        self.tokens["input"] += call.input_tokens
        self.tokens["output"] += call.output_tokens
        self.tokens["cost_usd"] = round(self.tokens["cost_usd"] + call.cost_usd, 6)
        self.tokens["calls"] += 1

    def begin_stage(self, iter_label: str, stage: str) -> None:
        self.stage = (iter_label, stage)
        self.tokens = no_tokens()

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)

    @property
    def log_path(self) -> Path:
        return self.layout.log

    def state(self) -> dict[str, Any]:
        return ledger_state.load(self.run_dir)

    def config(self) -> dict[str, Any]:
        return self.state()["config"]
