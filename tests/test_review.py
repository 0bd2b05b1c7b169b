"""The reviewer's checks (create flow A4) on small fake target projects built in tmp dirs.

Each check passes on the clean project and fails, by id and with file:line evidence, on a project
broken the way it looks for; the two fixes (a missing requirement, an unused config key) really fix.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from specloop.skills.scaffold.review import ReviewItem, list_checks, render_review_report, review_project

CLEAN = {
    "pyproject.toml": """
        [project]
        name = "toy"
        version = "0.1.0"
        requires-python = ">=3.11"

        [tool.ruff]
        line-length = 110
        """,
    "requirements-cpu.txt": """
        # what the code imports
        omegaconf>=2.3
        fastapi>=0.110
        uvicorn>=0.29
        """,
    "requirements-gpu.txt": """
        -r requirements-cpu.txt
        """,
    "README.md": """
        # toy

        See [the docs](https://example.com/docs) — links in prose are fine.

        ```bash
        python -m venv debug-cpu
        pip install -r requirements-cpu.txt
        ```

        ```bash
        python scripts/make_mini.py --out data/mini
        python scripts/train.py --config configs/default.yaml \\
            --data data/mini
        python scripts/infer.py --checkpoint outputs/last.pt
        uvicorn toy.serve:app --app-dir src --port 8000
        ```

        ## Measured SLA
        """,
    "configs/default.yaml": """
        # toy defaults
        data:
          root: data/mini  # where make_mini writes
          classes: [a, b]
        model:
          width: 8
          depth: 2
        train:
          epochs: 1
          lr: 0.01
          output_dir: outputs
        """,
    "src/toy/__init__.py": '''
        """Toy project."""
        ''',
    "src/toy/config.py": """
        from omegaconf import DictConfig, OmegaConf


        def load_config(path: str, overrides: list[str]) -> DictConfig:
            return OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(overrides))
        """,
    "src/toy/model.py": """
        from omegaconf import DictConfig


        def build_model(cfg: DictConfig) -> dict:
            m = cfg.model
            return {"width": m.width, "depth": m["depth"], "classes": list(cfg.data.classes)}
        """,
    "src/toy/serve.py": """
        from fastapi import FastAPI

        app = FastAPI()


        @app.get("/health")
        def health() -> dict:
            return {"status": "ok"}
        """,
    "scripts/infer.py": """
        import argparse
        import json
        from pathlib import Path


        def main() -> None:
            parser = argparse.ArgumentParser()
            parser.add_argument("--checkpoint", required=True)
            print(json.dumps({"read": Path(parser.parse_args().checkpoint).read_text()}))


        if __name__ == "__main__":
            main()
        """,
    "scripts/make_mini.py": """
        import argparse
        from pathlib import Path


        def main() -> None:
            parser = argparse.ArgumentParser()
            parser.add_argument("--out", default="data/mini")
            out = Path(parser.parse_args().out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "manifest.json").write_text("{}")


        if __name__ == "__main__":
            main()
        """,
    "scripts/train.py": """
        import argparse
        import json
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

        from toy.config import load_config
        from toy.model import build_model


        def main() -> None:
            parser = argparse.ArgumentParser()
            parser.add_argument("--config", default="configs/default.yaml")
            parser.add_argument("--data", required=True)
            parser.add_argument("--dry-run", action="store_true")
            parser.add_argument("--fast-dev-run", action="store_true")
            args = parser.parse_args()
            cfg = load_config(args.config, [f"data.root={args.data}"])
            model = build_model(cfg)
            if not Path(cfg.data.root, "manifest.json").exists():
                sys.exit("no data")
            print(json.dumps({"model": model, "epochs": cfg.train.epochs, "lr": cfg.train.get("lr")}))
            if not args.dry_run:
                Path(cfg.train.output_dir).mkdir(exist_ok=True)
                Path(cfg.train.output_dir, "last.pt").write_text("weights")


        if __name__ == "__main__":
            main()
        """,
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture(scope="session")
def clean_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review") / "toy"
    _write(root, CLEAN)
    return root


@pytest.fixture
def project(clean_project: Path, tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    shutil.copytree(clean_project, root, ignore=shutil.ignore_patterns("data", "outputs"))
    return root


def _append(path: Path, text: str) -> int:
    """Append `text` and return the 1-based line where it starts."""
    old = path.read_text(encoding="utf-8")
    path.write_text(old + textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return old.count("\n") + 1


def _one(items: list[ReviewItem], check_id: str) -> ReviewItem:
    (item,) = [i for i in items if i.id == check_id]
    return item


def test_every_check_passes_on_a_clean_project(project: Path) -> None:
    items = review_project(project, fix=False)
    assert [i.id for i in items] == [cid for cid, _ in list_checks()]
    assert {i.id for i in items} == {
        "ruff",
        "imports",
        "requirements",
        "readme-commands",
        "config-keys",
        "no-network",
    }
    failed = {i.id: i.evidence for i in items if not i.ok}
    assert not failed
    readme = _one(items, "readme-commands").evidence
    assert "not run here (creates or activates a venv): python -m venv debug-cpu" in readme
    assert "not run here (installs packages" in readme
    assert "(with --dry-run)" in readme
    assert "probed GET /health" in readme
    assert (
        "made last.pt first: python scripts/train.py --config configs/default.yaml --data data/mini --fast-dev-run"
        in readme
    )
    report = render_review_report(items)
    assert "**PASS**: 6 of 6 checks pass." in report
    assert report.count("\n## `") == 6


def test_ruff_failure_names_the_file_and_line(project: Path) -> None:
    line = _append(project / "src/toy/model.py", "import os\n")
    (item,) = review_project(project, only=["ruff"])
    assert not item.ok
    assert f"src/toy/model.py:{line}:" in item.evidence and "F401" in item.evidence
    assert "exit 1" in item.evidence


def test_import_failure_names_the_file_and_line(project: Path) -> None:
    (project / "src/toy/data.py").write_text("import json\nimport not_a_module_anywhere\n", encoding="utf-8")
    (item,) = review_project(project, only=["imports"])
    assert not item.ok
    assert "src/toy/data.py:2: toy.data: ModuleNotFoundError" in item.evidence


def test_script_that_fails_at_import_is_reported(project: Path) -> None:
    (project / "scripts/broken.py").write_text("import sys\n\nsys.exit(parse_args())\n", encoding="utf-8")
    (item,) = review_project(project, only=["imports"])
    assert not item.ok
    assert "scripts/broken.py:3: scripts/broken.py: NameError" in item.evidence


def test_missing_requirement_is_found_then_fixed(project: Path) -> None:
    req = project / "requirements-cpu.txt"
    req.write_text(req.read_text(encoding="utf-8").replace("omegaconf>=2.3\n", ""), encoding="utf-8")
    (item,) = review_project(project, only=["requirements"], fix=False)
    assert not item.ok
    assert "src/toy/config.py:1: imports omegaconf" in item.evidence
    assert "not listed in requirements-cpu.txt" in item.evidence
    assert "requirements-gpu.txt" not in item.evidence.split("\n", 1)[1]  # gpu file includes the cpu one

    (item,) = review_project(project, only=["requirements"], fix=True)
    assert item.ok, item.evidence
    assert item.fixed and item.fixed[0].startswith("requirements-cpu.txt: added omegaconf>=")
    assert any(line.startswith("omegaconf>=") for line in req.read_text(encoding="utf-8").splitlines())


def test_import_name_that_differs_from_its_distribution(project: Path) -> None:
    (project / "src/toy/plots.py").write_text("import sklearn\nfrom PIL import Image\n", encoding="utf-8")
    (item,) = review_project(project, only=["requirements"], fix=False)
    assert "src/toy/plots.py:1: imports scikit-learn" in item.evidence
    assert "src/toy/plots.py:2: imports pillow" in item.evidence


def test_readme_command_whose_script_is_missing(project: Path) -> None:
    line = _append(project / "README.md", "```bash\npython scripts/evaluate.py --data data/mini\n```\n") + 1
    (item,) = review_project(project, only=["readme-commands"])
    assert not item.ok
    assert f"README.md:{line}: scripts/evaluate.py does not exist" in item.evidence


def test_readme_command_that_fails(project: Path) -> None:
    line = _append(project / "README.md", "```bash\npython scripts/train.py --epochs 3\n```\n") + 1
    (item,) = review_project(project, only=["readme-commands"])
    assert not item.ok
    assert f"README.md:{line}: exit 2" in item.evidence
    assert "unrecognized arguments: --epochs" in item.evidence or "required: --data" in item.evidence


def test_unused_key_is_found_then_removed_keeping_comments(project: Path) -> None:
    cfg = project / "configs/default.yaml"
    text = cfg.read_text(encoding="utf-8").replace("  lr: 0.01\n", "  lr: 0.01\n  warmup: 3\n")
    cfg.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  warmup: 3") + 1
    (item,) = review_project(project, only=["config-keys"], fix=False)
    assert not item.ok
    assert f"configs/default.yaml:{line}: key train.warmup is never read" in item.evidence

    (item,) = review_project(project, only=["config-keys"], fix=True)
    assert item.ok, item.evidence
    assert item.fixed == ["configs/default.yaml: removed unused key train.warmup"]
    after = cfg.read_text(encoding="utf-8")
    assert "# where make_mini writes" in after and "# toy defaults" in after
    assert "warmup" not in OmegaConf.load(cfg).train


def test_unused_section_is_removed_whole(project: Path) -> None:
    cfg = project / "configs/default.yaml"
    _append(cfg, "serve:\n  host: 127.0.0.1\n  port: 8000\n")
    (item,) = review_project(project, only=["config-keys"], fix=True)
    assert item.ok, item.evidence
    assert "serve" not in OmegaConf.load(cfg)
    assert set(OmegaConf.load(cfg)) == {"data", "model", "train"}


def test_key_read_but_missing_stays_failed(project: Path) -> None:
    model = project / "src/toy/model.py"
    text = model.read_text(encoding="utf-8").replace('m["depth"]', 'm["depth"], "act": cfg.model.activation')
    model.write_text(text, encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "activation" in t)
    (item,) = review_project(project, only=["config-keys"], fix=True)
    assert not item.ok
    assert f"src/toy/model.py:{line}: reads config key model.activation" in item.evidence
    assert item.fixed == []


def test_whole_section_reads_count_every_key_under_it(project: Path) -> None:
    model = project / "src/toy/model.py"
    model.write_text(
        "from omegaconf import OmegaConf\n\n\ndef build(cfg):\n"
        "    return dict(**cfg.model), OmegaConf.to_container(cfg.data), cfg.train.items()\n",
        encoding="utf-8",
    )
    (item,) = review_project(project, only=["config-keys"], fix=False)
    assert item.ok, item.evidence


def test_network_access_is_reported_by_file_and_line(project: Path) -> None:
    (project / "src/toy/fetch.py").write_text(
        textwrap.dedent(
            '''
            """Fetches things (https://example.com in a docstring is fine)."""
            import urllib.request

            import timm
            from torchvision import datasets

            LOCAL = "http://127.0.0.1:8000/health"


            def get(root):
                datasets.MNIST(root, download=True)
                timm.create_model("resnet18", pretrained=True)
                return urllib.request.urlopen("https://example.com/data.zip")
            '''
        ).lstrip(),
        encoding="utf-8",
    )
    (item,) = review_project(project, only=["no-network"])
    assert not item.ok
    for expected in (
        "src/toy/fetch.py:2: imports urllib.request",
        "src/toy/fetch.py:11: datasets.MNIST(download=True)",
        "src/toy/fetch.py:12: timm.create_model(pretrained=True)",
        "src/toy/fetch.py:13: URL in code: https://example.com/data.zip",
    ):
        assert expected in item.evidence
    assert "127.0.0.1" not in item.evidence and ":1:" not in item.evidence


def test_hub_loading_without_a_local_path(project: Path) -> None:
    (project / "scripts/hub.py").write_text(
        "from transformers import AutoModel\n\n"
        'a = AutoModel.from_pretrained("bert-base-uncased")\n'
        'b = AutoModel.from_pretrained("./weights/bert")\n'
        "c = AutoModel.from_pretrained(path, local_files_only=True)\n",
        encoding="utf-8",
    )
    (item,) = review_project(project, only=["no-network"])
    assert not item.ok
    assert "scripts/hub.py:3: AutoModel.from_pretrained(...) without a local path" in item.evidence
    assert "scripts/hub.py:4" not in item.evidence and "scripts/hub.py:5" not in item.evidence


def test_report_lists_every_item_with_its_evidence(project: Path) -> None:
    (project / "src/toy/data.py").write_text("import not_a_module_anywhere\n", encoding="utf-8")
    items = review_project(project, only=["imports", "no-network"])
    report = render_review_report(items)
    assert "**FAIL**: 1 of 2 checks pass." in report
    assert "| `imports` | FAIL | 0 |" in report and "| `no-network` | pass | 0 |" in report
    assert "src/toy/data.py:1: toy.data: ModuleNotFoundError" in report


def test_unknown_check_id_is_refused(project: Path) -> None:
    with pytest.raises(ValueError, match="unknown review checks"):
        review_project(project, only=["spelling"])


# Every family's default project passing review with nothing to fix: tests/test_create.py (the
# create flow's review stage runs on each family's project).


def test_the_same_project_gets_the_same_report(project: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin" / "toy"
    shutil.copytree(project, twin)
    reports = [render_review_report(review_project(p, only=["readme-commands"])) for p in (project, twin)]
    assert reports[0] == reports[1]
    assert "made last.pt first" in reports[0]
