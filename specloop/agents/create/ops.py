"""The create flow's ops (A5): venv.md, the verified pins, and the spec copies in the target project."""

from __future__ import annotations

from importlib import resources

from specloop.agents.base import StageResult
from specloop.agents.create.coder import commit_all
from specloop.agents.create.common import TECH_MD, CreateAgent
from specloop.ledger.files import atomic_write_text, sha256_file
from specloop.skills.scaffold.venv import constraints_text, render_venv_md

# Copied from the framework into every target project: its code of conduct and the specs its later
# stages (environment, debugging, deployment) follow.
SPEC_COPIES = ("CLAUDE.md", "VENV_CONFIG.md", "DEBUG_CODE.md", "DOCKER_CONFIG.md")


class CreateOps(CreateAgent):
    role = "ops"

    def venv(self, label: str) -> StageResult:
        project = self.project_dir()
        atomic_write_text(project / "venv.md", render_venv_md(project))
        atomic_write_text(project / "constraints-verified.txt", constraints_text(project))
        specs = resources.files("specloop.specs")
        for name in SPEC_COPIES:
            atomic_write_text(project / name, specs.joinpath(name).read_text(encoding="utf-8"))
        atomic_write_text(project / TECH_MD, (self.out / TECH_MD).read_text(encoding="utf-8"))
        hashes = {
            name: sha256_file(project / name)
            for name in ("venv.md", "constraints-verified.txt", *SPEC_COPIES, TECH_MD)
        }
        self.record("tool_result", "venv", label, tool="copies", result=hashes)
        sha = commit_all(project, "specloop venv: venv.md, verified pins, spec copies")
        return StageResult(
            f"venv.md and {len(SPEC_COPIES) + 1} spec copies in {project.name} (commit {sha[:8]})",
            {"copies": hashes, "commit": sha},
        )
