"""The page people read: every figure `DEFT_Loop_Report.html` shows, held against the evidence.

The page's visible text is parsed with the stdlib HTML parser (styles, scripts and attributes are
not text). The iterations table is checked cell by cell: each row's KPI and holdout FAR against
the ones recomputed from that iteration's inference.csv, and the checkpoint it names against the
one the evidence selects. Every other percentage on the page must be a figure it could be quoting:
inside an iteration's card, that iteration's (and the one before's) FARs, its candidates' FARs and
its recall per defect type; elsewhere, any of those, the target or 100 %. The AUROCs the page's
table and the iteration summaries show are held against the state's.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from specloop.skills.audit.claims import Truth
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.prose import ANY_PERCENT, Figure, ProseChecker, matches
from specloop.skills.audit.run_records import RunRecords

REPORT_PAGE = "DEFT_Loop_Report.html"
CARD_PREFIX = "card-"
TABLE_HEAD = ("Iteration", "Status", "KPI FAR@100%R")  # the iterations table's first header cells
KPI_COL, HOLDOUT_COL, AUROC_COL, CHOSEN_COL = 2, 4, 5, 6
SUMMARY_AUROC = re.compile(r"\b(KPI|holdout) AUROC (\d+\.\d+)")
AUROC_KEYS = {"KPI": "kpi_auroc", "holdout": "holdout_auroc"}
NOT_TEXT = frozenset({"style", "script", "head"})


class PageText(HTMLParser):
    """Visible text as (source line, text, card label) chunks, and every table's rows, each cell as
    (source line, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[tuple[int, str, str | None]] = []
        self.tables: list[list[list[tuple[int, str]]]] = []
        self._hidden = 0
        self._sections: list[str | None] = []
        self._row: list[tuple[int, str]] | None = None
        self._cell: list[tuple[int, str]] | None = None

    @property
    def card(self) -> str | None:
        return next((s for s in reversed(self._sections) if s is not None), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in NOT_TEXT:
            self._hidden += 1
        elif tag == "section":
            ident = dict(attrs).get("id") or ""
            self._sections.append(ident[len(CARD_PREFIX) :] if ident.startswith(CARD_PREFIX) else None)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in NOT_TEXT:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "section" and self._sections:
            self._sections.pop()
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            line = self._cell[0][0] if self._cell else self.getpos()[0]
            self._row.append((line, " ".join(t for _, t in self._cell)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self.tables:
                self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if self._hidden or not text:
            return
        line = self.getpos()[0] + data[: len(data) - len(data.lstrip())].count("\n")
        self.chunks.append((line, text, self.card))
        if self._cell is not None:
            self._cell.append((line, text))


def read_page(html: str) -> PageText:
    page = PageText()
    page.feed(html)
    page.close()
    return page


class PageChecker:
    def __init__(self, run: RunRecords, out: Findings, truths: dict[str, Truth]) -> None:
        self.run, self.out, self.truths = run, out, truths
        self.prose = ProseChecker(run, out, truths)
        self.reported: set[tuple[int, str]] = set()  # (line, figure): one finding per figure shown

    def _differs(self, check: str, line: int, what: str, found: str, expected: str) -> None:
        self.reported.add((line, found))
        self.out.add(
            check,
            f"the report page shows {what} that differs from the evidence",
            file=REPORT_PAGE,
            where=f"line {line}",
            expected=expected,
            found=found,
        )

    def _figure(self, cell: tuple[int, str], label: str, want: Figure | None, what: str) -> None:
        line, stated = cell
        m = ANY_PERCENT.search(stated)
        if want is None or m is None:
            return
        if not matches(m.group(1), want):
            shown = f"{want.percent:.{len(m.group(1).split('.')[1]) if '.' in m.group(1) else 0}f}%"
            self._differs("claims.far", line, f"{label}'s {what}", m.group(0), f"{shown} ({want.what})")

    def table(self, page: PageText) -> None:
        for rows in page.tables:
            if not rows or tuple(t for _, t in rows[0][: len(TABLE_HEAD)]) != TABLE_HEAD:
                continue
            for cells in rows[1:]:
                label = cells[0][1] if cells else ""
                if label not in self.truths or len(cells) <= CHOSEN_COL:
                    continue
                self._figure(cells[KPI_COL], label, self.prose.far(label), "KPI FAR")
                self._figure(cells[HOLDOUT_COL], label, self.prose.far(label, "holdout"), "holdout FAR")
                self.auroc(REPORT_PAGE, cells[AUROC_COL], label, "KPI")
                chosen = self.truths[label].chosen
                line, shown = cells[CHOSEN_COL]
                if chosen and shown != chosen:
                    self._differs("claims.selection", line, f"{label}'s kept checkpoint", shown, chosen)

    def auroc(self, file: str, cell: tuple[int, str], label: str, kind: str) -> None:
        """An AUROC shown, against the state's record at the decimals shown (the ledger's own figure)."""
        line, shown = cell
        want = self.run.iterations.get(label, {}).get(AUROC_KEYS[kind])
        if not isinstance(want, int | float) or not re.fullmatch(r"\d+\.\d+", shown):
            return
        decimals = len(shown.split(".")[1])
        if abs(float(shown) - want) > 0.5 * 10**-decimals + 1e-9:
            self.out.add(
                "claims.auroc",
                f"{file} shows {label}'s {kind} AUROC differently from the state",
                file=file,
                where=f"line {line}",
                expected=f"{want:.{decimals}f} (deft_state.json iterations.{label}.{AUROC_KEYS[kind]})",
                found=shown,
            )

    def summaries(self) -> None:
        for label in self.run.iterations:
            path = self.run.dir / f"{label}_summary.md"
            if not path.is_file():
                continue
            self.out.saw("claims.auroc", self.run.rel(path))
            for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                for m in SUMMARY_AUROC.finditer(text):
                    self.auroc(self.run.rel(path), (number, m.group(2)), label, m.group(1))

    def card_figures(self, label: str) -> list[Figure]:
        prev = self.prose.previous(label) if label in self.prose.labels else None
        figures = [self.prose.far(x, kind) for x in (label, prev) for kind in ("KPI", "holdout")]
        figures += [self.prose.candidate(label, n) for n in ("best_val", "latest")]
        truth = self.truths.get(label)
        kpi = truth.kpi if truth else None
        if kpi is not None:
            figures += [
                Figure(r * 100, f"{label} {t} recall recomputed") for t, r in kpi.recall_by_type.items()
            ]
        figures += [self.prose.target, Figure(100.0, "100 %")]
        return [f for f in figures if f is not None]

    def text(self, page: PageText) -> None:
        everywhere = self.prose.known() + [f for label in self.truths for f in self.card_figures(label)]
        for line, text, card in page.chunks:
            known = self.card_figures(card) if card in self.truths else everywhere
            for m in ANY_PERCENT.finditer(text):
                if (line, m.group(0)) in self.reported:
                    continue
                if not any(matches(m.group(1), f) for f in known):
                    where = f"{card}'s card" if card else "the page"
                    expected = "one of " + ", ".join(sorted({f"{f.percent:.2f}% ({f.what})" for f in known}))
                    self._differs("claims.far", line, f"a percentage in {where}", m.group(0), expected)


def check_pages(run: RunRecords, out: Findings, truths: dict[str, Truth]) -> None:
    path = run.dir / REPORT_PAGE
    checker = PageChecker(run, out, truths)
    checker.summaries()
    if not path.is_file():
        return
    out.saw("claims.far", REPORT_PAGE)
    out.saw("claims.auroc", REPORT_PAGE)
    page = read_page(path.read_text(encoding="utf-8", errors="replace"))
    checker.table(page)
    checker.text(page)
