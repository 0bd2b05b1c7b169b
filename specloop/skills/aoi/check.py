"""`specloop workspace check`: the data-contract validator every run calls first.

Reads only; never writes into the workspace. Findings are Problems (file, line, rule, sentence)
with a severity; any error makes the workspace unusable for a run.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import UnidentifiedImageError

from specloop.errors import ContractError
from specloop.skills.aoi.images import image_files, mode_problem, open_image
from specloop.skills.aoi.layout import Split, Workspace
from specloop.skills.aoi.problems import Problem
from specloop.skills.aoi.schema import (
    FIRST_DATA_LINE,
    GOOD_LABEL,
    LEAKAGE_KEY,
    check_rows,
    leakage_keys,
    read_csv,
)
from specloop.skills.aoi.spec import ExperimentSpec, load_spec_with_problems, resolve_path

MIN_SIDE = 8
MAX_SIDE = 8192
# At most this many findings per (file, rule) are listed one by one; the rest are summarised.
MAX_PER_RULE = 20
LEAKAGE_SETS = ("training", "validation", "kpi", "holdout")
# Sets whose FAR at 100 % recall is reported: undefined without both PASS and defect rows.
SCORED_SETS = ("kpi", "holdout")


@dataclass
class SplitSummary:
    rows: int
    labels: dict[str, int]
    boards: dict[str, int]


@dataclass
class CheckReport:
    workspace: Path
    problems: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    synthetic_pairs: int = 0
    spec: ExperimentSpec | None = None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def by_severity(self, severity: str) -> list[Problem]:
        return [p for p in self.problems if p.severity == severity]

    def to_dict(self) -> dict[str, object]:
        return {
            "workspace": str(self.workspace),
            "ok": self.ok,
            "splits": {
                name: {"rows": s.rows, "labels": s.labels, "boards": s.boards}
                for name, s in self.splits.items()
            },
            "synthetic_pairs": self.synthetic_pairs,
            "problems": [p.to_dict() for p in self.problems],
        }


class _ImageProbe:
    """Decodes each image file once and remembers its size or why it is unusable."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._seen: dict[Path, tuple[int, int] | str] = {}

    def probe(self, path: Path) -> tuple[int, int] | str:
        if path in self._seen:
            return self._seen[path]
        self._seen[path] = result = self._probe(path)
        return result

    def _probe(self, path: Path) -> tuple[int, int] | str:
        try:
            resolved = path.resolve()
        except OSError:
            return "cannot be resolved"
        if not resolved.is_relative_to(self.root):
            return "resolves outside the workspace"
        if not resolved.is_file():
            return "is missing"
        try:
            with open_image(resolved) as img:
                problem = mode_problem(img)
                if problem is not None:
                    return problem
                img.load()
                size = img.size
        except ContractError:
            return "has a header claiming more pixels than the limit (a decompression bomb?)"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return "does not decode as an image"
        w, h = size
        if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
            return f"has an implausible size {w}x{h} (sides must be {MIN_SIDE}..{MAX_SIDE} px)"
        return size


class _Collector:
    """Caps repeated findings per (file, rule) so one broken column does not print 10,000 lines."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, problem: Problem) -> None:
        key = (problem.file, problem.rule)
        self.counts[key] += 1
        if self.counts[key] <= MAX_PER_RULE:
            self.report.problems.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.add(p)

    def close(self) -> None:
        for (file, rule), n in self.counts.items():
            if n > MAX_PER_RULE:
                self.report.problems.append(
                    Problem(file, rule, f"and {n - MAX_PER_RULE} more line(s) break this rule", "error")
                )


def check_workspace(root: Path, *, plan: bool = True) -> CheckReport:
    """Validate a DEFT workspace against the data contract. Raises ContractError if `root` is no folder.

    With `plan`, the spec's model is also built (on the meta device) to prove it can train here."""
    if not root.is_dir():
        raise ContractError(f"{root}: workspace folder not found.")
    ws = Workspace(root)
    report = CheckReport(workspace=root)
    out = _Collector(report)
    out.extend(_check_writable(ws))

    spec, spec_problems = load_spec_with_problems(ws.spec, display=ws.rel(ws.spec))
    report.spec = spec
    out.extend(spec_problems)
    if spec is not None:
        out.extend(_spec_paths(spec, ws))
        if plan:
            from specloop.skills.changenet.preflight import check_plan

            out.extend(check_plan(spec, ws.root, ws.rel(ws.spec)))

    probe = _ImageProbe(root)
    frames: dict[str, pd.DataFrame] = {}
    for split in ws.splits():
        name = ws.rel(split.csv)
        if not split.csv.is_file():
            if split.required:
                out.add(Problem(name, "missing-file", f"the {split.name} CSV is missing"))
            continue
        try:
            df = read_csv(split.csv, display=name)
        except ContractError as exc:
            out.add(Problem(name, "csv-schema", str(exc).removeprefix(f"{name}: ")))
            continue
        frames[split.name] = df
        report.splits[split.name] = SplitSummary(
            rows=len(df),
            labels=dict(sorted(Counter(df["label"]).items())),
            boards=dict(sorted(Counter(df["boardname"]).items())),
        )
        if df.empty:
            out.add(Problem(name, "empty-csv", f"the {split.name} CSV has no rows", "error"))
        out.extend(check_rows(df, name))
        out.extend(_check_classes(df, split.name, name))
        out.extend(_check_duplicates(df, name))
        if spec is None:
            out.add(
                Problem(name, "images-skipped", "image checks skipped because the spec did not load", "note")
            )
        else:
            out.extend(_collapse_missing(_check_images(df, split, spec, probe, name), df, spec, name))

    out.extend(_check_leakage(frames, ws))
    out.extend(_check_mining_coverage(frames, ws))
    report.synthetic_pairs = _check_synthetic_pool(ws, probe, out)
    out.close()
    return report


def _check_writable(ws: Workspace) -> list[Problem]:
    """A run writes under results/: it must be a folder (or absent) this process may write in."""
    results = ws.results
    if results.exists() and not results.is_dir():
        return [Problem(ws.rel(results), "results-not-folder", "is a file; a run writes its folders here")]
    where = results if results.is_dir() else ws.root
    if not os.access(where, os.W_OK | os.X_OK):
        return [
            Problem(
                ws.rel(where) if where != ws.root else str(ws.root),
                "workspace-read-only",
                "is not writable by this user (read-only workspace?); a run writes under results/",
            )
        ]
    return []


def _check_classes(df: pd.DataFrame, split: str, file: str) -> list[Problem]:
    """A scored set needs both classes (FAR at 100 % recall is undefined otherwise)."""
    if df.empty:
        return []
    n_pass = int((df["label"] == GOOD_LABEL).sum())
    n_defect = len(df) - n_pass
    if split in SCORED_SETS and (n_pass == 0 or n_defect == 0):
        missing = "PASS" if n_pass == 0 else "defect"
        return [
            Problem(
                file,
                "kpi-classes",
                f"the {split} set has no {missing} rows, so FAR at 100 % recall is undefined; it needs both "
                "PASS and defect rows",
            )
        ]
    if split == "training" and n_defect == 0:
        return [Problem(file, "training-no-defects", "the training set has no defect rows", "warning")]
    return []


def _check_duplicates(df: pd.DataFrame, file: str) -> list[Problem]:
    """Rows repeated within one CSV (same leakage key): counted twice in training and scoring."""
    key = leakage_keys(df)
    repeated = key.duplicated(keep="first")
    first_line = {k: int(i) + FIRST_DATA_LINE for i, k in key[~repeated].items()}
    return [
        Problem(
            file,
            "duplicate-row",
            f"row repeats line {first_line[key[i]]} on ({', '.join(LEAKAGE_KEY)})",
            "warning",
            line=int(i) + FIRST_DATA_LINE,
        )
        for i in key.index[repeated]
    ]


def _spec_paths(spec: ExperimentSpec, ws: Workspace) -> list[Problem]:
    """Dataset paths in the spec that differ from the workspace layout (the loop uses the layout)."""
    expected = {
        "train_dataset": ws.split("training"),
        "validation_dataset": ws.split("validation"),
        "test_dataset": ws.split("kpi"),
    }
    problems = []
    ds = spec.dataset.classify
    for key, split in expected.items():
        entry = getattr(ds, key)
        for attr, want in (("csv_path", split.csv), ("images_dir", split.images_dir)):
            got = resolve_path(getattr(entry, attr), ws.root)
            if got is not None and got.resolve() != want.resolve():
                problems.append(
                    Problem(
                        ws.rel(ws.spec),
                        "spec-dataset-path",
                        f"dataset.classify.{key}.{attr} points to {getattr(entry, attr)!r}; a DEFT run uses "
                        f"the workspace's {ws.rel(want)} instead",
                        "note",
                    )
                )
    return problems


def _check_images(
    df: pd.DataFrame, split: Split, spec: ExperimentSpec, probe: _ImageProbe, file: str
) -> list[Problem]:
    ds = spec.dataset.classify
    lights = spec.lights()
    problems = []
    cols = df[["input_path", "golden_path", "object_name"]].itertuples(index=False)
    for idx, (input_path, golden_path, object_name) in enumerate(cols):
        line = idx + FIRST_DATA_LINE
        if not (input_path and golden_path and object_name):
            continue  # already reported as an empty mandatory value
        sides = {
            "input": image_files(split.images_dir, input_path, object_name, lights, ds.image_ext),
            "golden": image_files(split.images_dir, golden_path, object_name, lights, ds.image_ext),
        }
        sizes: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for side, files in sides.items():
            for f in files:
                result = probe.probe(f)
                if isinstance(result, str):
                    rule = (
                        "path-outside-workspace"
                        if "outside" in result
                        else "image-too-large"
                        if "limit" in result
                        else "image-unreadable"
                    )
                    shown = _shown(f, probe.root)
                    problems.append(Problem(file, rule, f"{side} image {shown} {result}", line=line))
                else:
                    sizes[side].append(result)
        if len(sizes["input"]) == len(sides["input"]) and len(sizes["golden"]) == len(sides["golden"]):
            for light, a, b in zip(lights or [""], sizes["input"], sizes["golden"], strict=True):
                if a != b:
                    what = f"light {light}" if light else "image"
                    problems.append(
                        Problem(
                            file,
                            "image-size-mismatch",
                            f"{what}: test is {a[0]}x{a[1]} but golden is {b[0]}x{b[1]}",
                            line=line,
                        )
                    )
    return problems


def _collapse_missing(
    problems: list[Problem], df: pd.DataFrame, spec: ExperimentSpec, file: str
) -> list[Problem]:
    """When no image of a CSV exists, the cause is the spec or the folder, not each row: one sentence."""
    missing = [p for p in problems if p.message.endswith(" is missing")]
    sides = 2 * max(len(spec.lights()), 1)
    if not missing or len(missing) < sides * len(df):
        return problems
    ds = spec.dataset.classify
    example = missing[0].message.removesuffix(" is missing").split(" image ", 1)[-1]
    return [
        Problem(
            file,
            "images-missing",
            f"none of the {len(missing)} image files of this CSV exist (the first would be {example}); check "
            f"its images folder and the spec's dataset.classify.image_ext ({ds.image_ext!r}) and input_map "
            f"({', '.join(spec.lights()) or 'none: one image per side'})",
        )
    ]


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _check_leakage(frames: dict[str, pd.DataFrame], ws: Workspace) -> list[Problem]:
    """Rows sharing the leakage key across training, validation, KPI and holdout sets."""
    problems = []
    keyed = {name: leakage_keys(frames[name]) for name in LEAKAGE_SETS if name in frames}
    names = list(keyed)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = set(keyed[a]) & set(keyed[b])
            if not common:
                continue
            file_b = ws.rel(ws.split(b).csv)
            lines = [int(j) + FIRST_DATA_LINE for j in keyed[b].index[keyed[b].isin(common)]]
            for line in lines:
                problems.append(
                    Problem(
                        file_b,
                        "leakage",
                        f"row repeats a {a} row on (input_path, golden_path, label, object_name, boardname)",
                        line=line,
                    )
                )
    return problems


def _check_mining_coverage(frames: dict[str, pd.DataFrame], ws: Workspace) -> list[Problem]:
    kpi, pool = frames.get("kpi"), frames.get("mining_pool")
    if kpi is None:
        return []
    file = ws.rel(ws.split("mining_pool").csv)
    if pool is None:
        return [
            Problem(
                file,
                "mining-pool-missing",
                "no mining pool: the loop can only use the synthetic pool",
                "warning",
            )
        ]
    kpi_types = {lab for lab in kpi["label"] if lab != GOOD_LABEL}
    missing = sorted(kpi_types - set(pool["label"]))
    return [
        Problem(
            file, "mining-coverage", f"defect type {t!r} of the KPI set has no mining-pool samples", "warning"
        )
        for t in missing
    ]


def synthetic_pool_gap(ws: Workspace) -> str | None:
    """Why the workspace has no usable pre-generated pool (missing or empty), or None when it has one."""
    dirs = [d for d in (ws.reconstructed_dir, ws.original_dir) if d.is_dir()]
    if not dirs:
        return (
            f"{ws.rel(ws.anomalygen_dir)} has no pre-generated pool (reconstructed_image/, original_image/)"
        )
    if not any(p.is_file() for d in dirs for p in d.iterdir()):
        return f"the pre-generated pool in {ws.rel(ws.anomalygen_dir)} has no images"
    return None


def _check_synthetic_pool(ws: Workspace, probe: _ImageProbe, out: _Collector) -> int:
    """reconstructed_image/ (NG) and original_image/ (OK) must pair 1-to-1 by file name and decode."""
    rec_dir, orig_dir = ws.reconstructed_dir, ws.original_dir
    if not rec_dir.is_dir() and not orig_dir.is_dir():
        out.add(
            Problem(
                ws.rel(ws.anomalygen_dir),
                "synthetic-pool-missing",
                "no pre-generated pool (reconstructed_image/, original_image/); a run stops at pre-flight "
                "unless started with --no-synthetic-pool",
                "warning",
            )
        )
        return 0
    rec = {p.name for p in rec_dir.iterdir() if p.is_file()} if rec_dir.is_dir() else set()
    orig = {p.name for p in orig_dir.iterdir() if p.is_file()} if orig_dir.is_dir() else set()
    for name in sorted(rec - orig):
        out.add(Problem(ws.rel(rec_dir / name), "synthetic-unpaired", "has no original_image/ counterpart"))
    for name in sorted(orig - rec):
        out.add(
            Problem(ws.rel(orig_dir / name), "synthetic-unpaired", "has no reconstructed_image/ counterpart")
        )
    if not rec and not orig:
        out.add(
            Problem(
                ws.rel(ws.anomalygen_dir),
                "synthetic-pool-empty",
                "the pre-generated pool has no images; a run stops at pre-flight unless started with "
                "--no-synthetic-pool",
                "warning",
            )
        )
    for name in sorted(rec & orig):
        for d in (rec_dir, orig_dir):
            result = probe.probe(d / name)
            if isinstance(result, str):
                out.add(Problem(ws.rel(d / name), "image-unreadable", f"synthetic image {result}"))
    if ws.defect_spec.is_file():
        for i, raw in enumerate(ws.defect_spec.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                out.add(Problem(ws.rel(ws.defect_spec), "defect-spec-json", "line is not valid JSON", line=i))
                continue
            if not isinstance(entry, dict):
                out.add(
                    Problem(ws.rel(ws.defect_spec), "defect-spec-json", "line is not a JSON object", line=i)
                )
    return len(rec & orig)
