"""The watcher: new mining-pool rows → fine-tune the champion → the gate → promote, reject or roll back.

A driver loop, not a LangGraph graph: each look (`step`) reads the records on disk first (pause
flag, the round in progress, the processed rows), so a SIGKILL at any point loses nothing it had
recorded and repeats nothing it had finished. A round's rows are written to `current_round.json`
before training starts; a restart finishes that round (resuming its training from `latest.pth`)
before it looks for anything new. Rows become processed only when their round is decided.
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from specloop.ledger.files import atomic_write_json, read_json
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import COLUMNS
from specloop.skills.aoi.spec import load_spec, resolve_path
from specloop.skills.notify import EVENTS, Notifiers, load_notifiers
from specloop.skills.registry import feed, journal, quality
from specloop.skills.registry.champion import TRAIN_SPEC, sync_champion_files
from specloop.skills.registry.gate import GateRule, decide
from specloop.skills.registry.layout import WatchLayout
from specloop.skills.registry.limits import Limits, Window
from specloop.skills.registry.measure import golden_hash, measure
from specloop.skills.registry.store import ModelRegistry
from specloop.skills.registry.training import TrainOutcome, run_training, write_spec

MIN_REPLAY = 8
ROUND_HISTORY = 20


@dataclass
class WatchOptions:
    once: bool = False
    window: Window | None = None
    min_new_rows: int = 10
    poll_s: float = 2.0
    debounce_s: float = 2.0
    epochs: int | None = None  # per round; default half the spec's epochs (as the DEFT loop fine-tunes)
    baseline_epochs: int | None = None  # the first champion; default the spec's
    lr: float | None = None  # per round; default half the spec's (as the DEFT loop fine-tunes)
    replay: float = 1.0  # replayed earlier rows per new row
    min_improvement: float = 0.01  # three rounds under this relative gain in a row: a plateau
    restarts: int = 3
    gate: GateRule = field(default_factory=GateRule)
    limits: Limits = field(default_factory=Limits)
    registry_uri: str | None = None
    progress: bool = True


class Watcher:
    def __init__(self, ws: Path, opts: WatchOptions, console: Console | None = None) -> None:
        self.ws = ws.resolve()
        self.opts = opts
        self.lay = WatchLayout(self.ws)
        self.console = console or Console(stderr=False)
        self.registry = ModelRegistry(self.ws, opts.registry_uri)
        self.spec_path = Workspace(self.ws).spec
        self.spec = load_spec(self.spec_path)
        self.lights, self.ext = feed.spec_lights(self.spec)
        self.notifiers = _load_notifiers(
            Workspace(self.ws).env_file, self.lay.watch_dir / "notifications.jsonl"
        )
        self._seen: tuple[str, float] | None = (
            None  # (pool sha256, monotonic time first seen) for the debounce
        )
        self._alarm: str | None = None

    # ---- output

    def say(self, stage: str, message: str) -> None:
        self.console.print(f"[bold]\\[watch · {stage}][/] {escape(message)}", highlight=False, soft_wrap=True)

    def tell(self, event: str, message: str, **fields: Any) -> None:
        """An event for the journal, the status line and, for the alert kinds, the notifiers."""
        journal.log_event(self.ws, event, message, **fields)
        self.say(event.replace("_", " "), message)
        if event in EVENTS:
            self.notifiers.send(event, message, {"workspace": str(self.ws), **fields})

    def set_state(self, state: str, reason: str = "", **extra: Any) -> None:
        journal.write_state(
            self.ws, state=state, reason=reason, registry_uri=self.registry.uri, pid=os.getpid(), **extra
        )

    # ---- the loop

    def run(self) -> int:
        """`--once`: one look, then exit. Otherwise look every poll_s until interrupted: Ctrl-C, or
        SIGTERM (what `kill`, systemd and `docker stop` send; a shell's background job ignores SIGINT)."""
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                self.step()
                if self.opts.once:
                    return 0
                time.sleep(self.opts.poll_s)
        except KeyboardInterrupt:
            self.say("stop", "interrupted")
            return 130
        finally:
            self.set_state("stopped", "not running")

    def step(self) -> str:
        """One look: what it did or why it waits, in a few words."""
        sync_champion_files(self.ws, self.registry.champion(), self.registry.uri)
        why = self.blocked()
        if why is not None:
            return why
        current = self._read_current()
        if current is not None:
            return self.finish_round(current)
        if self.registry.champion() is None:
            return self.first_champion()
        scan = feed.scan_pool(self.ws, self.lights, self.ext)
        state = journal.read_state(self.ws)
        if state.get("failed_mark") and scan.mark["sha256"] == state["failed_mark"]:
            return self.idle("the last round failed; waiting for new data")
        if not scan.ready:
            return self.idle(
                f"no new rows ({scan.waiting} waiting for images)" if scan.waiting else "no new rows"
            )
        if not self.opts.once and not self._settled(scan.mark["sha256"]):
            return self.idle(
                f"{len(scan.ready)} new row(s); waiting {self.opts.debounce_s:g}s for writes to settle"
            )
        need = self.opts.min_new_rows
        if quality.plateau(state.get("rounds", []), self.opts.min_improvement):
            need *= 2
            if len(scan.ready) < need:
                return self.skip(
                    f"last rounds improved under {self.opts.min_improvement:.0%}; waiting for {need} rows"
                )
        if len(scan.ready) < need:
            return self.idle(f"{len(scan.ready)} new row(s), waiting for {need}")
        return self.start_round(scan)

    def blocked(self) -> str | None:
        """Paused by hand, outside the window, or under resource pressure: why, else None."""
        reason = journal.pause_reason(self.ws)
        if reason is not None:
            self.set_state("paused", reason)
            return f"paused: {reason}"
        if self.opts.window is not None and not self.opts.window.contains(datetime.now()):
            return self.idle(f"outside the training window {self.opts.window}")
        pressure = self.opts.limits.pressure(self.lay.results if self.lay.results.exists() else self.ws)
        if pressure is not None and "disk" in pressure:
            self.prune()
            pressure = self.opts.limits.pressure(self.lay.results)
        if pressure is None:
            self._alarm = None
            return None
        if pressure != self._alarm:
            self.tell("resource_alarm", f"paused: {pressure}")
            self._alarm = pressure
        self.set_state("paused", pressure)
        return f"paused: {pressure}"

    def idle(self, reason: str) -> str:
        self.set_state("idle", reason)
        self.say("idle", reason)
        return reason

    def skip(self, reason: str) -> str:
        return self.idle(f"round skipped: {reason}")

    def _settled(self, sha: str) -> bool:
        now = time.monotonic()
        if self._seen is None or self._seen[0] != sha:
            self._seen = (sha, now)
            if self.opts.debounce_s > 0:
                return False
        return now - self._seen[1] >= self.opts.debounce_s

    # ---- rounds

    def first_champion(self) -> str:
        """No champion yet: train the spec's own training set and register it as the first one."""
        scan = feed.scan_pool(self.ws, self.lights, self.ext)
        w = Workspace(self.ws)
        rid = f"r{int(time.time())}_base"
        current = {
            "id": rid,
            "kind": "baseline",
            "rows": [r.key for r in scan.ready],  # what the pool held: the starting mark, not trained on
            "mark": scan.mark,
            "lr": self.spec.train.optim.lr,
            "data_hash": hashlib.sha256(w.split("training").csv.read_bytes()).hexdigest(),
            "overrides": {
                "train.num_epochs": self.opts.baseline_epochs or self.spec.train.num_epochs,
            },
        }
        self.tell(
            "new_data", f"first look: no champion yet; training one on {w.rel(w.split('training').csv)}"
        )
        return self.begin(current)

    def start_round(self, scan: feed.PoolScan) -> str:
        rid = f"r{int(time.time())}_{hashlib.sha256(''.join(r.key for r in scan.ready).encode()).hexdigest()[:4]}"
        rdir = self.lay.rounds / rid
        csv = rdir / "train_round.csv"
        replay = self._replay(scan, rid)
        data_hash = _write_round_csv(
            csv, [_rebase(r.values, "augmentation/mining_pool/images") for r in scan.ready] + replay
        )
        champion = self.registry.champion()
        assert champion is not None
        epochs = self.opts.epochs or max(1, self.spec.train.num_epochs // 2)
        current = {
            "id": rid,
            "kind": "round",
            "rows": [r.key for r in scan.ready],
            "mark": scan.mark,
            "lr": self.opts.lr if self.opts.lr is not None else self.spec.train.optim.lr * 0.5,
            "data_hash": data_hash,
            "champion": champion["version"],
            "overrides": {
                "dataset.classify.train_dataset.csv_path": str(csv),
                "dataset.classify.train_dataset.images_dir": str(self.ws),
                "train.num_epochs": epochs,
                "train.pretrained_model_path": champion["checkpoint"],
            },
        }
        self.tell(
            "new_data",
            f"{len(scan.ready)} new row(s) + {len(replay)} replayed; fine-tuning {champion['version']} "
            f"for {epochs} epoch(s)",
            rows=len(scan.ready),
        )
        return self.begin(current)

    def _replay(self, scan: feed.PoolScan, rid: str) -> list[dict[str, str]]:
        """A seeded sample of earlier rows: processed pool rows and the base training set."""
        w = Workspace(self.ws)
        base = feed.read_rows(w.split("training").csv)
        earlier = [_rebase(r.values, "train/images") for r in base] + [
            _rebase(r.values, "augmentation/mining_pool/images") for r in scan.processed
        ]
        n = min(len(earlier), max(MIN_REPLAY, round(self.opts.replay * len(scan.ready))))
        return random.Random(rid).sample(earlier, n)

    def begin(self, current: dict[str, Any]) -> str:
        atomic_write_json(self.lay.current_round, current)
        return self.finish_round(current)

    def finish_round(self, current: dict[str, Any]) -> str:
        """Train (or resume training), measure, register, gate; then the rows are processed."""
        rid = current["id"]
        rdir = self.lay.rounds / rid
        existing = next((v for v in self.registry.versions() if v["round"] == rid), None)
        if existing is not None:  # killed after registering: decide, do not train again
            return self.decide_round(current, existing, None)
        self.set_state("training", f"round {rid}", round=rid)
        self.tell(
            "training_started", f"round {rid}: training ({current['kind']}, lr {current['lr']:g})", round=rid
        )
        outcome = self.train(current, rdir / ("train_retry" if current.get("retried") else "train"))
        if outcome.status == "diverged" and not current.get("retried"):
            self.tell(
                "training_failed", f"round {rid}: {outcome.detail}; retrying once at half the rate", round=rid
            )
            current = current | {"lr": current["lr"] / 2, "retried": True}
            atomic_write_json(self.lay.current_round, current)
            outcome = self.train(current, rdir / "train_retry")
        if outcome.status != "ok":
            return self.fail_round(current, outcome)
        for warning in quality.warnings(outcome.history):
            self.tell("quality_warning", f"round {rid}: {warning}", round=rid)
        last = outcome.history[-1] if outcome.history else {}
        self.tell(
            "training_finished",
            f"round {rid}: {len(outcome.history)} epoch(s) in {outcome.seconds:.0f}s, "
            f"final loss {last.get('train_loss', float('nan')):.4f}",
            round=rid,
        )
        version = self.register(current, outcome)
        return self.decide_round(current, version, outcome)

    def train(self, current: dict[str, Any], out_dir: Path) -> TrainOutcome:
        spec = write_spec(
            self.spec_path,
            out_dir / TRAIN_SPEC,
            {
                **self._absolute_paths(),
                **current["overrides"],
                "results_dir": str(out_dir.parent),
                "train.results_dir": str(out_dir),
                "train.optim.lr": current["lr"],
                "train.resume_training_checkpoint_path": None,
            },
        )
        return run_training(spec, out_dir, restarts=self.opts.restarts)

    def _absolute_paths(self) -> dict[str, str | None]:
        """The spec's relative paths made absolute: the stage spec lives under results/, not specs/."""
        ds = self.spec.dataset.classify
        out: dict[str, str | None] = {}
        for which in ("train_dataset", "validation_dataset", "test_dataset", "infer_dataset"):
            dp = getattr(ds, which)
            for key in ("csv_path", "images_dir"):
                p = resolve_path(getattr(dp, key), self.ws)
                out[f"dataset.classify.{which}.{key}"] = None if p is None else str(p)
        backbone = resolve_path(self.spec.model.backbone.pretrained_backbone_path, self.ws)
        out["model.backbone.pretrained_backbone_path"] = None if backbone is None else str(backbone)
        return out

    def register(self, current: dict[str, Any], outcome: TrainOutcome) -> dict[str, Any]:
        self.say("measure", f"round {current['id']}: golden, KPI, holdout and validation sets")
        metrics = measure(self.ws, outcome.best, outcome.out_dir.parent / "measure", self.spec)
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        return self.registry.register(
            checkpoint=outcome.best,
            files={
                TRAIN_SPEC: outcome.out_dir / TRAIN_SPEC,
                "train_status.json": outcome.out_dir / "status.json",
            },
            data_hash=current["data_hash"],
            command=command,
            metrics=metrics,
            golden_hash=golden_hash(self.ws),
            round_id=current["id"],
        )

    def champion_metrics(self, champion: dict[str, Any]) -> dict[str, Any]:
        """The champion's numbers on today's golden set (re-measured when the golden set changed)."""
        if champion["golden_hash"] == golden_hash(self.ws):
            return champion["metrics"]
        out = self.lay.rounds / "champion_measure" / champion["version"]
        metrics = measure(self.ws, Path(champion["checkpoint"]), out, self.spec)
        return champion["metrics"] | {"golden_far": metrics["golden_far"], "val_far": metrics["val_far"]}

    def decide_round(
        self, current: dict[str, Any], version: dict[str, Any], outcome: TrainOutcome | None
    ) -> str:
        rid, vid = current["id"], version["version"]
        champion = self.registry.champion()
        if champion is not None and champion["version"] == vid:
            decision_promote, reason, improvement = True, "already the champion", None
        else:
            base = self.champion_metrics(champion) if champion is not None else None
            d = decide(version["metrics"], base, self.opts.gate)
            decision_promote, reason, improvement = d.promote, d.reason, d.improvement
            if d.promote:
                self.registry.promote(vid)
            else:
                self.registry.set_status(vid, "rejected")
        worse = improvement is not None and improvement < 0
        if decision_promote:
            self.tell("promoted", f"{vid} is the champion: {reason}", version=vid, round=rid)
        else:
            self.tell("rejected", f"{vid} rejected: {reason}", version=vid, round=rid)
        self.close_round(
            current,
            "promoted" if decision_promote else "rejected",
            worse,
            version=vid,
            improvement=improvement,
        )
        return f"{'promoted' if decision_promote else 'rejected'} {vid}"

    def fail_round(self, current: dict[str, Any], outcome: TrainOutcome) -> str:
        """The champion stays; the rows stay pending; the next try waits for new data."""
        rid = current["id"]
        kept = self.registry.champion()
        self.tell(
            "training_failed",
            f"round {rid}: {outcome.detail}; champion {kept['version'] if kept else 'none'} kept",
            round=rid,
        )
        self.lay.current_round.unlink(missing_ok=True)
        self._remember_round(
            {
                "id": rid,
                "outcome": "failed",
                "worse": True,
                "champion": current.get("champion"),
                "detail": outcome.detail,
            }
        )
        self.set_state("idle", f"round {rid} failed", failed_mark=current["mark"]["sha256"], last_round=rid)
        self.maybe_roll_back()
        return f"failed {rid}"

    def close_round(self, current: dict[str, Any], outcome: str, worse: bool, **extra: Any) -> None:
        rid = current["id"]
        total = feed.mark_processed(self.ws, current["rows"], rid, current["mark"])
        summary = {
            "id": rid,
            "outcome": outcome,
            "worse": worse,
            "champion": current.get("champion"),
            **extra,
        }
        atomic_write_json(self.lay.rounds / rid / "round.json", {**current, **summary})
        self.lay.current_round.unlink(missing_ok=True)
        self._remember_round(summary)
        self.set_state(
            "idle", f"round {rid} {outcome}", last_round=summary, processed_rows=total, failed_mark=None
        )
        self.maybe_roll_back()

    def _remember_round(self, summary: dict[str, Any]) -> None:
        rounds = [*journal.read_state(self.ws).get("rounds", []), summary][-ROUND_HISTORY:]
        journal.write_state(self.ws, state=journal.read_state(self.ws).get("state", "idle"), rounds=rounds)

    def maybe_roll_back(self) -> None:
        current = self.registry.champion()
        if current is None:
            return
        rounds = journal.read_state(self.ws).get("rounds", [])
        if quality.worse_streak(rounds, current["version"]) < quality.WORSE_ROUNDS:
            return
        target = self.registry.previous_champion()
        if target is None:
            self.tell(
                "quality_warning",
                f"{quality.WORSE_ROUNDS} worse rounds in a row, but no earlier healthy version",
            )
            return
        self.registry.rollback(target["version"])
        self.tell(
            "rolled_back",
            f"{quality.WORSE_ROUNDS} worse rounds in a row: champion {current['version']} rolled back to "
            f"{target['version']}",
            version=target["version"],
        )

    def prune(self) -> None:
        """Low disk: keep the files of the champion and the best three other versions only."""
        for vid in quality.versions_to_prune(self.registry.versions()):
            model = self.lay.version_dir(vid) / "model.pth"
            if model.is_file():
                model.unlink()
                self.registry.set_tag(vid, "files", "pruned on low disk")
                journal.log_event(self.ws, "pruned", f"{vid}: model file removed on low disk")

    def _read_current(self) -> dict[str, Any] | None:
        return read_json(self.lay.current_round) if self.lay.current_round.is_file() else None


def _load_notifiers(env_file: Path, log_path: Path) -> Notifiers:
    return load_notifiers(env_file if env_file.is_file() else None, log_path=log_path)


def _rebase(values: dict[str, str], images_root: str) -> dict[str, str]:
    """A row whose image paths are relative to the workspace root (the round CSV's images_dir)."""
    out = dict(values)
    out["input_path"] = f"{images_root}/{values['input_path']}"
    out["golden_path"] = f"{images_root}/{values['golden_path']}"
    return out


def _write_round_csv(path: Path, rows: list[dict[str, str]]) -> str:
    import pandas as pd

    from specloop.skills.aoi.schema import write_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(pd.DataFrame(rows, columns=list(COLUMNS)), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
