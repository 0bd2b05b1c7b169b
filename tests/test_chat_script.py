"""A scripted chat works as a typed one does: the reply to "run …" ends with the Pre-Flight Summary
and the approval question before "go" is read, "status" is answered while the run trains, and the
piped chat ends with a finished one-iteration run and its best_model.json."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from specloop.ledger import loop_log


def test_a_piped_chat_completes_a_one_iteration_run(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    spec = ws / "specs" / "baseline_spec.yaml"
    text = spec.read_text(encoding="utf-8")
    assert "num_epochs: 5" in text
    spec.write_text(text.replace("num_epochs: 5", "num_epochs: 1"), encoding="utf-8")  # tiny epochs
    script = f"run the DEFT loop on {ws} with 1 iteration\ngo\nstatus\nquit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", "chat"],
        input=script,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250"},
        timeout=1800,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:] + out[-3000:]
    assert "Nothing to approve yet" not in out and "Traceback" not in out + proc.stderr
    summary, question = out.index("Pre-Flight Summary"), out.index("Approve this DEFT run?")
    go, status = out.index("you › go"), out.index("you › status")
    assert out.index("Started run_") < summary < question < go < out.index("Approved run_") < status
    (run,) = sorted((ws / "results").glob("run_*"))
    ended = out.index(f"Run {run.name} ended: ")
    assert " is running " in out[status:ended], "status was not answered while the run ran"
    assert (run / "best_model.json").is_file()
    stages = [(e["iter"], e["stage"]) for e in loop_log.read_entries(run / "loop_log.jsonl")]
    assert ("iter1", "train") in stages and stages[-1] == ("final", "loop_stop")
    assert "approved by chat" in " ".join(e["summary"] for e in loop_log.read_entries(run / "loop_log.jsonl"))
