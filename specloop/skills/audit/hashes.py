"""Files against the hashes the transcript recorded when they were written: every checkpoint a
training wrote (kept or pruned, `checkpoints` entries) and every inference CSV (`file_hashes`
entries). The transcript is hash-chained, so a file edited later differs from a record that cannot
be edited unnoticed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specloop.ledger.transcript import FILE_HASHES
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import TRANSCRIPT_FILE, RunRecords

CHECK = "claims.files"
CHECKPOINTS = "checkpoints"  # the coder's record of a training's checkpoint manifest
TRAIN_DIR = "train"


def recorded_files(run: RunRecords) -> dict[str, tuple[int, str, bool]]:
    """Run-relative path -> (transcript line, sha256, pruned) of the last record of each file."""
    out: dict[str, tuple[int, str, bool]] = {}
    for line, e in run.transcript_entries:
        data = e.get("data") if isinstance(e.get("data"), dict) else {}
        if e.get("kind") == FILE_HASHES and isinstance(data.get("files"), dict):
            for rel, sha in data["files"].items():
                out[str(rel)] = (line, str(sha), False)
        elif e.get("kind") == CHECKPOINTS and isinstance(data.get("files"), list):
            for f in data["files"]:
                if isinstance(f, dict) and "file" in f:
                    rel = f"{e.get('iter')}/{TRAIN_DIR}/{f['file']}"
                    out[rel] = (line, str(f.get("sha256")), bool(f.get("pruned")))
    return out


def _trained_labels(run: RunRecords) -> list[str]:
    return sorted({str(e.get("iter")) for _, e in run.transcript_entries if e.get("kind") == CHECKPOINTS})


def check_files(run: RunRecords, out: Findings) -> None:
    records = recorded_files(run)
    if not records:
        return
    out.saw(CHECK, f"{len(records)} files hashed in {TRANSCRIPT_FILE}")
    for rel, (line, sha, pruned) in sorted(records.items()):
        path = run.dir / rel
        if not path.is_file():
            if not pruned:
                out.add(
                    CHECK,
                    f"{rel}, recorded when it was written, does not exist",
                    file=rel,
                    where=f"{TRANSCRIPT_FILE} line {line}",
                    expected=f"sha256 {sha[:12]}…",
                    found="no file",
                )
            continue
        actual = run.sha256(path)
        if actual != sha:
            out.add(
                CHECK,
                f"{rel} differs from the file recorded when it was written"
                + (" (a pruned checkpoint is back)" if pruned else ""),
                file=rel,
                where=f"{TRANSCRIPT_FILE} line {line}",
                expected=f"sha256 {sha}",
                found=f"sha256 {actual}",
            )
    for label in _trained_labels(run):
        _unrecorded(run, out, run.dir / label / TRAIN_DIR, records)


def _unrecorded(run: RunRecords, out: Findings, train_dir: Path, records: dict[str, Any]) -> None:
    """A checkpoint in a training's folder that no record lists was put there afterwards."""
    if not train_dir.is_dir():
        return
    for path in sorted(train_dir.glob("*.pth")):
        rel = run.rel(path)
        if rel not in records:
            out.add(
                CHECK,
                f"{rel} is not among the checkpoints its training recorded",
                file=rel,
                expected="a checkpoint listed in the training's checkpoints entry",
                found=f"sha256 {run.sha256(path)}",
            )
