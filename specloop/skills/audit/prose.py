"""FAR figures stated in words: iteration summaries, RCA texts and stage-log summaries.

A stated percentage matches a recomputed fraction when, rounded to the decimals the text shows,
they are the same figure. Known phrasings ("KPI FAR@100%R 80.0% → 84.4%", "chose latest: KPI
FAR 20.36%") are checked position by position; any other percentage in the text must be one of
the figures the text could be quoting (a recomputed FAR, the target, 100 %), so a model-written
summary is checked too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specloop.skills.audit.claims import CANDIDATES, Truth
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import LOG_FILE, RunRecords

P = r"(\d+(?:\.\d+)?)"
ANY_PERCENT = re.compile(rf"(?<![\w@.]){P}%")
KPI_CHANGE = re.compile(rf"KPI FAR@100%R (?:{P}% → )?{P}%")
HOLDOUT_CHANGE = re.compile(rf"holdout (?:{P}% → )?{P}%")
CANDIDATE = re.compile(rf"\b(best_val|latest) {P}%")
GAP = re.compile(rf"{P} pp from target \({P}% vs < {P}%\)")
MET = re.compile(rf"KPI met: {P}% < {P}%")
RCA_FAR = re.compile(rf"FAR@100%(?:R|recall) (?:is )?{P}%")
EVALUATE_LINE = re.compile(rf"FAR (?:{P}% → )?{P}% \(target < {P}%\); chose (\w+): KPI FAR {P}%")
RCA_LINE = re.compile(rf"FAR@100%R {P}%")
STOP_LINE = re.compile(rf"best model from (\w+), FAR {P}%")
RCA_TEXTS = ("unreachable_kpi.txt", "rca_explanation.md")


@dataclass(frozen=True)
class Figure:
    """A figure a text may state, in percent units, and where it comes from."""

    percent: float
    what: str


@dataclass(frozen=True)
class Expect:
    """What regex group `group` must state: a figure, or a name; None when there is nothing to compare."""

    group: int
    want: Figure | str | None
    check: str = "claims.far"


@dataclass(frozen=True)
class Phrase:
    pattern: re.Pattern[str]
    expects: Callable[[re.Match[str]], list[Expect]]


def _decimals(stated: str) -> int:
    return len(stated.split(".")[1]) if "." in stated else 0


def matches(stated: str, figure: Figure) -> bool:
    return abs(float(stated) - figure.percent) <= 0.5 * 10 ** -_decimals(stated) + 1e-9


def _shown(stated: str, figure: Figure) -> str:
    return f"{figure.percent:.{_decimals(stated)}f}% ({figure.what})"


class ProseChecker:
    def __init__(self, run: RunRecords, out: Findings, truths: dict[str, Truth]) -> None:
        self.run, self.out, self.truths = run, out, truths
        target = (run.state.get("config") or {}).get("far_target")
        self.target = Figure(target * 100, "the FAR target") if isinstance(target, int | float) else None
        self.labels = list(run.iterations)

    def far(self, label: str | None, kind: str = "KPI") -> Figure | None:
        truth = self.truths.get(label or "")
        kpi = (truth.holdout if kind == "holdout" else truth.kpi) if truth else None
        return Figure(kpi.far * 100, f"{label} {kind} FAR recomputed from {kpi.source}") if kpi else None

    def candidate(self, label: str, name: str) -> Figure | None:
        truth = self.truths.get(label)
        kpi = truth.candidates.get(name) if truth else None
        return Figure(kpi.far * 100, f"{label} {name} FAR recomputed from {kpi.source}") if kpi else None

    def previous(self, label: str) -> str | None:
        i = self.labels.index(label)
        return self.labels[i - 1] if i > 0 else None

    def best_before(self, label: str) -> Figure | None:
        """The best KPI FAR of the iterations before `label` (what its evaluate line compares with)."""
        if label not in self.labels:
            return None
        earlier = [f for x in self.labels[: self.labels.index(label)] if (f := self.far(x))]
        return min(earlier, key=lambda f: f.percent) if earlier else None

    def known(self) -> list[Figure]:
        """Every figure a text may quote without a known phrasing around it."""
        figures = [self.far(label) for label in self.truths] + [self.far(x, "holdout") for x in self.truths]
        figures += [self.candidate(label, n) for label in self.truths for n in CANDIDATES]
        figures += [self.target, Figure(100.0, "100 %")]
        return [f for f in figures if f is not None]

    def check_text(
        self, file: str, lines: list[tuple[int, str]], phrases: list[Phrase], known: list[Figure]
    ) -> None:
        for number, line in lines:
            covered: set[int] = set()
            for phrase in phrases:
                for m in phrase.pattern.finditer(line):
                    for e in phrase.expects(m):
                        stated = m.group(e.group)
                        if stated is None:
                            continue
                        covered.add(m.start(e.group))
                        if isinstance(e.want, str):
                            if stated != e.want:
                                self._mismatch(e.check, file, number, stated, e.want)
                        elif e.want is not None and not matches(stated, e.want):
                            self._mismatch(e.check, file, number, f"{stated}%", _shown(stated, e.want))
            for m in ANY_PERCENT.finditer(line):
                if m.start(1) not in covered and not any(matches(m.group(1), f) for f in known):
                    expected = "one of " + ", ".join(sorted({_shown(m.group(1), f) for f in known}))
                    self._mismatch("claims.far", file, number, m.group(0), expected)

    def _mismatch(self, check: str, file: str, line: int, found: str, expected: str) -> None:
        self.out.add(
            check,
            "a figure stated in the text differs from the evidence",
            file=file,
            where=f"line {line}",
            expected=expected,
            found=found,
        )

    def _summary_phrases(self, label: str) -> list[Phrase]:
        prev = self.previous(label)
        this, before = self.far(label), self.far(prev)
        hold, hold_before = self.far(label, "holdout"), self.far(prev, "holdout")
        target = self.target
        gap = (
            Figure(this.percent - target.percent, f"{label} KPI FAR − target, pp")
            if this and target
            else None
        )
        return [
            Phrase(KPI_CHANGE, lambda m: [Expect(1, before), Expect(2, this)]),
            Phrase(HOLDOUT_CHANGE, lambda m: [Expect(1, hold_before), Expect(2, hold)]),
            Phrase(CANDIDATE, lambda m: [Expect(2, self.candidate(label, m.group(1)))]),
            Phrase(GAP, lambda m: [Expect(1, gap), Expect(2, this), Expect(3, target)]),
            Phrase(MET, lambda m: [Expect(1, this), Expect(2, target)]),
        ]

    def _text_file(self, path: Path, phrases: list[Phrase], known: list[Figure]) -> None:
        text = path.read_text(encoding="utf-8", errors="replace")
        self.out.saw("claims.far", self.run.rel(path))
        self.check_text(self.run.rel(path), list(enumerate(text.splitlines(), start=1)), phrases, known)

    def texts(self) -> None:
        known = self.known()
        for label in self.labels:
            summary = self.run.dir / f"{label}_summary.md"
            if summary.is_file():
                self._text_file(summary, self._summary_phrases(label), known)
            this = self.far(label)
            rca_known = [f for f in (this, self.target, Figure(100.0, "100 %")) if f]
            for name in RCA_TEXTS:
                path = self.run.dir / label / "rca_results" / name
                if path.is_file():
                    self._text_file(path, [Phrase(RCA_FAR, lambda m, f=this: [Expect(1, f)])], rca_known)

    def _log_phrases(self, label: str, stage: object) -> list[Phrase]:
        if stage == "evaluate":
            chosen = self.truths[label].chosen if label in self.truths else None
            return [
                Phrase(
                    EVALUATE_LINE,
                    lambda m: [
                        Expect(1, self.best_before(label)),
                        Expect(2, self.far(label)),
                        Expect(3, self.target),
                        Expect(4, chosen, "claims.selection"),
                        Expect(5, self.far(label)),
                    ],
                )
            ]
        if stage == "rca":
            return [Phrase(RCA_LINE, lambda m: [Expect(1, self.far(label))])]
        if stage == "loop_stop":
            ranked = [(x, f) for x in self.truths if (f := self.far(x))]
            if ranked:
                best, figure = min(ranked, key=lambda xf: xf[1].percent)
                return [Phrase(STOP_LINE, lambda m: [Expect(1, best, "claims.best"), Expect(2, figure)])]
        return []

    def log(self) -> None:
        if not self.run.log_entries:
            return
        known = self.known()
        self.out.saw("claims.far", f"{len(self.run.log_entries)} stage-log summaries")
        for number, entry in self.run.log_entries:
            label = str(entry.get("iter"))
            phrases = self._log_phrases(label, entry.get("stage"))
            self.check_text(LOG_FILE, [(number, str(entry.get("summary", "")))], phrases, known)


def check_prose(run: RunRecords, out: Findings, truths: dict[str, Truth]) -> None:
    checker = ProseChecker(run, out, truths)
    checker.texts()
    checker.log()
