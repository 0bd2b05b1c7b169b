"""One run directory read once for the audit: state, stage log and transcript with their line
numbers, the run's pipeline, plus cached file hashes so a large checkpoint is hashed at most once."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from dotenv import dotenv_values

from specloop.errors import SpecloopError
from specloop.ledger.files import sha256_file
from specloop.ledger.redaction import collect_secrets
from specloop.ledger.state import CREATE_STATE_FILE, state_path
from specloop.pipelines.registry import Pipeline, get_pipeline, list_pipelines
from specloop.skills.aoi.schema import read_csv

STATE_FILE = "deft_state.json"
DEFAULT_PIPELINE = "deft"  # a state without a `pipeline` key is a DEFT run's
LOG_FILE = "loop_log.jsonl"
TRANSCRIPT_FILE = "transcript.jsonl"
BEST_MODEL_FILE = "best_model.json"
ITER_LABEL = re.compile(r"baseline|iter([1-9]\d*)")


class NotARunError(SpecloopError):
    """The directory holds none of a run's records (DEFT or create)."""


@dataclass(frozen=True)
class Line:
    """One line of a JSONL record: its 1-based line number and the object, or None if unreadable."""

    number: int
    entry: dict[str, Any] | None
    raw: str


def read_lines(path: Path) -> list[Line]:
    if not path.is_file():
        return []
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            entry = None
        out.append(Line(number, entry if isinstance(entry, dict) else None, raw))
    return out


def iter_number(label: str) -> int | None:
    """0 for `baseline`, N for `iterN`, None for anything else (`final` included)."""
    m = ITER_LABEL.fullmatch(label)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else 0


def inside(path: str, root: str) -> bool:
    """Whether absolute `path` lies in `root` (lexically: `..` is collapsed, links are not followed)."""
    p, r = PurePosixPath(os.path.normpath(path)), PurePosixPath(os.path.normpath(root))
    return p == r or r in p.parents


@dataclass
class RunRecords:
    dir: Path
    state: dict[str, Any]
    state_error: str | None
    log: list[Line]
    transcript: list[Line]
    state_file: str = STATE_FILE  # the state file the run has (or, when it has none, the one it should)
    inferred_pipeline: str | None = None  # from the log's labels, when the state cannot say
    _hashes: dict[tuple[int, int, int, int], str] = field(default_factory=dict, repr=False)
    _frames: dict[Path, pd.DataFrame] = field(default_factory=dict, repr=False)

    def rel(self, path: Path) -> str:
        """A path as findings show it: relative to the run directory when inside it."""
        try:
            return path.relative_to(self.dir).as_posix()
        except ValueError:
            return str(path)

    def local(self, recorded: str) -> Path:
        """Where a path the run recorded lies now: relative paths and paths under the run's original
        directory are taken from the audited directory (a copied run audits like the original)."""
        original = str(self.state.get("results_dir") or "")
        if original and inside(recorded, original):
            rest = os.path.relpath(os.path.normpath(recorded), os.path.normpath(original))
            return self.dir if rest == "." else self.dir / rest
        p = Path(recorded)
        return p if p.is_absolute() else self.dir / p

    def sha256(self, path: Path) -> str:
        """Hashed once per file: hard links (latest, best_val and an epoch file) share one hash."""
        st = path.stat()
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(path)
        return self._hashes[key]

    def frame(self, path: Path) -> pd.DataFrame:
        """A contract CSV, read once per audit; ContractError (one sentence) when unreadable."""
        if path not in self._frames:
            self._frames[path] = read_csv(path, display=self.rel(path))
        return self._frames[path]

    @property
    def pipeline_name(self) -> str:
        name = self.state.get("pipeline")
        if isinstance(name, str) and name:
            return name
        return self.inferred_pipeline or DEFAULT_PIPELINE

    @cached_property
    def pipeline(self) -> Pipeline:
        """The run's stage registry entry; an unknown name audits against DEFT's (integrity reports it)."""
        try:
            return get_pipeline(self.pipeline_name)
        except KeyError:
            return get_pipeline(DEFAULT_PIPELINE)

    @property
    def is_create(self) -> bool:
        return self.pipeline.name == "create"

    @property
    def workspace(self) -> Path | None:
        ws = self.state.get("workspace")
        return Path(ws) if isinstance(ws, str) and ws else None

    @cached_property
    def secrets(self) -> frozenset[str]:
        """The workspace's .env values and secret-named environment variables, as the loop redacts them."""
        env_file = self.workspace / ".env" if self.workspace else None
        values = dotenv_values(env_file) if env_file is not None and env_file.is_file() else {}
        return collect_secrets(values, os.environ)

    @cached_property
    def log_entries(self) -> list[tuple[int, dict[str, Any]]]:
        return [(line.number, line.entry) for line in self.log if line.entry is not None]

    @cached_property
    def transcript_entries(self) -> list[tuple[int, dict[str, Any]]]:
        return [(line.number, line.entry) for line in self.transcript if line.entry is not None]

    @cached_property
    def delegated(self) -> frozenset[tuple[str, str]]:
        """The (label, stage) lines a target run logs as done in the create run it came from
        (`source_run`): their records live there, so this run's transcript and state hold none."""
        source = self.state.get("source_run")
        if not isinstance(source, str) or not source:
            return frozenset()
        return frozenset(
            (str(e.get("iter")), str(e.get("stage")))
            for _, e in self.log_entries
            if e.get("status") == "ok" and str(e.get("summary", "")).startswith(f"done in {source}")
        )

    @cached_property
    def best_model(self) -> dict[str, Any] | None:
        return self.json(self.dir / BEST_MODEL_FILE)

    @cached_property
    def iterations(self) -> dict[str, dict[str, Any]]:
        """The state's iteration records, baseline first, then iter1, iter2 … by number."""
        raw = self.state.get("iterations")
        records = raw if isinstance(raw, dict) else {}
        labels = sorted(
            (k for k in records if iter_number(k) is not None and isinstance(records[k], dict)),
            key=lambda k: iter_number(k) or 0,
        )
        return {k: records[k] for k in labels}

    def json(self, path: Path) -> dict[str, Any] | None:
        """A JSON object from disk; None when absent or not a readable object."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def load_records(run_dir: Path) -> RunRecords:
    """Read `run_dir`; raise NotARunError when it holds no state, stage log or transcript at all."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotARunError(f"{run_dir} is not a directory; `specloop audit` takes a run directory.")
    state_file = state_path(run_dir)
    names = (STATE_FILE, CREATE_STATE_FILE, LOG_FILE, TRANSCRIPT_FILE)
    if not any((run_dir / n).is_file() for n in names):
        raise NotARunError(
            f"{run_dir} is not a DEFT or create run: it has no {STATE_FILE}, {CREATE_STATE_FILE}, "
            f"{LOG_FILE} or {TRANSCRIPT_FILE} (a DEFT run lives under <workspace>/results/run_<timestamp>/, "
            "a create run in the --out directory of `specloop create`)."
        )
    state: dict[str, Any] = {}
    state_error = None
    if not state_file.is_file():
        state_error = "the file is missing"
    else:
        try:
            loaded = json.loads(state_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            state_error = f"not valid JSON ({exc})"
        else:
            if isinstance(loaded, dict):
                state = loaded
            else:
                state_error = "not a JSON object"
    log = read_lines(run_dir / LOG_FILE)
    inferred = None if state_error is None else _pipeline_from_labels(log)
    if inferred == "create":
        state_file = run_dir / CREATE_STATE_FILE
    return RunRecords(
        dir=run_dir.resolve(),
        state=state,
        state_error=state_error,
        log=log,
        transcript=read_lines(run_dir / TRANSCRIPT_FILE),
        state_file=state_file.name,
        inferred_pipeline=inferred,
    )


def _pipeline_from_labels(log: list[Line]) -> str | None:
    """The non-iterative pipeline whose scopes label the log's first line (a create run's `framework`)."""
    first = next((line.entry for line in log if line.entry is not None), None)
    if first is None:
        return None
    for pipeline in list_pipelines():
        if not pipeline.iterative and first.get("iter") in pipeline.scope_order:
            return pipeline.name
    return None
