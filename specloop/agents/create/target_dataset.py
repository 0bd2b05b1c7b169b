"""Part B's dataset agent (B2): data/mini by venv.md's rule, mini_dataset.md, and the notebook
executed headless in the target venv."""

from __future__ import annotations

from specloop.agents.base import StageResult
from specloop.agents.create.coder import commit_all
from specloop.agents.create.target_common import MINI_COMMAND, TargetAgent
from specloop.errors import HardStop
from specloop.ledger.files import atomic_write_text
from specloop.skills.target.mini import count_files, read_manifest, render_mini_md
from specloop.skills.target.notebook import errors, execute_argv, image_outputs

NOTEBOOK = "notebooks/mini_dataset.ipynb"
NOTEBOOK_TIMEOUT_S = 300


class TargetDataset(TargetAgent):
    role = "dataset"

    def mini_dataset(self, label: str) -> StageResult:
        project = self.project_dir()
        py = self.target_python()
        rec = self.run_command(
            "mini_dataset", label, [str(py), *MINI_COMMAND], cwd=project, timeout_s=600, name="make_mini"
        )
        if not rec.ok:
            raise HardStop("make-mini", f"`{' '.join(MINI_COMMAND)}` {rec.message}: {rec.stderr_tail[-300:]}")
        mini = project / "data" / "mini"
        manifest = read_manifest(mini)
        on_disk = count_files(mini)
        atomic_write_text(
            project / "mini_dataset.md",
            render_mini_md(
                project.name,
                manifest,
                on_disk,
                command="python " + " ".join(MINI_COMMAND),
                metric=self.family().metric,
                notebook=NOTEBOOK,
            ),
        )
        nb = project / NOTEBOOK
        run = self.run_command(
            "mini_dataset",
            label,
            execute_argv(py, nb, cwd=nb.parent, timeout_s=NOTEBOOK_TIMEOUT_S),
            cwd=project,
            timeout_s=NOTEBOOK_TIMEOUT_S + 60,
            name="notebook",
        )
        if not run.ok:
            tail = (run.stderr_tail or run.stdout_tail).strip().splitlines()[-1:] or [""]
            raise HardStop(
                "notebook-failed", f"{NOTEBOOK} did not run in {py.parent.parent.name}: {tail[0][:300]}"
            )
        images = image_outputs(nb)
        sha = commit_all(project, "specloop mini_dataset: mini_dataset.md, executed notebook")
        problems = errors(nb)
        summary = (
            f"data/mini: {sum(on_disk.values())} files, {len(manifest.get('classes', []))} classes; "
            f"notebook ran in {run.seconds:.0f}s with {images} image output(s)"
            + (f", {len(problems)} error(s)" if problems else "")
        )
        return StageResult(summary, {"files": on_disk, "images": images, "commit": sha})
