"""What an audit reports: named checks, the findings they raise, and the verdict.

Checks that do not apply to a run's pipeline (DEFT's KPI claims on a create run, the build log
on a DEFT run) examine nothing and report `n/a`.

A finding always says where (file and line, entry or key) and, when there is a number or a name to
compare, what was expected and what was found. Errors make a run fail its audit; warnings are
suspicious but explainable (a crash can leave a torn last line) and fail it only under `--strict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from specloop.ledger.redaction import redact

Severity = Literal["error", "warning"]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1

# Every check the audit runs, by name, with what it guards. docs/audit.md explains each one.
CHECKS: dict[str, str] = {
    "integrity.unreadable": "the records parse: state JSON, one JSON object with its keys per log/transcript line",
    "integrity.transcript-chain": "transcript.jsonl hash chain unbroken (no edited, removed or reordered entry)",
    "integrity.transcript-log": "every finished stage has its loop_log line and its transcript stage_end",
    "integrity.log-seq": "loop_log.jsonl seq runs 1, 2, 3 … without gaps or repeats",
    "integrity.log-stages": "one log line per (label, stage), in the run's pipeline order (stage registry)",
    "integrity.state-log": "the state file agrees with the log (iterations or stages, stop reason, status)",
    "gate.approval": "exactly one approval, in the transcript, the log and the state",
    "gate.order": "the approval comes before any stage the registry puts after the gate",
    "gate.approver": "who approved is named, known and the same in every record",
    "claims.evidence": "the inference.csv behind every evaluated iteration exists and is readable",
    "claims.far": "every FAR@100%recall stated anywhere equals the one recomputed from inference.csv",
    "claims.threshold": "every 100%-recall threshold stated equals the recomputed one",
    "claims.recall": "every recall stated at that threshold equals the recomputed one (100 % overall)",
    "claims.selection": "each iteration kept the candidate checkpoint with the lower recomputed FAR",
    "claims.best": "the best model is the iteration with the lowest recomputed KPI FAR",
    "claims.checkpoint": "every kept checkpoint exists and its sha256 matches the ledger",
    "claims.auroc": "every AUROC the report page and iteration summaries show equals the state's",
    "claims.files": "every checkpoint and inference CSV hashes as the transcript recorded it when written",
    "claims.build-log": "create: every [x] in PROJECT_BUILD_LOG.md has a passing build record",
    "claims.commands": "create: build records and kept logs/ match the transcript's command entries",
    "claims.tech": "create: every number, label and formula in tech.md equals tech.json's",
    "claims.review": "create: REVIEW_REPORT.md says PASS for every check when the log says review ok",
    "claims.answers": "create: the project's .specloop-answers.yml is what codegen rendered from",
    "data.workspace": "the workspace the run read is still there and its input sets are unchanged",
    "data.leakage": "no training row shares the leakage key with a validation, KPI or holdout row",
    "data.provenance": "training-set row counts add up from _provenance.csv and each stage's outputs",
    "data.synth-pool": "the synthetic pool still matches synth_pool/manifest.json and its rows",
    "data.outside-workspace": "no path the run read or wrote lies outside the workspace",
    "record.secret": "no key, token or password anywhere in the run directory",
    "record.model-call": "every model call records provider, model, tokens and cost",
    "record.tokens": "each log line's token tally equals its stage's model calls",
    "record.hard-stop": "every hard stop names its check and reason in state, log and transcript",
}


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str
    file: str | None = None
    where: str | None = None
    expected: str | None = None
    found: str | None = None

    @property
    def location(self) -> str:
        return ":".join(p for p in (self.file, self.where) if p) or "run directory"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"location": self.location}


@dataclass
class Findings:
    """The collector every check writes to; `examined` records what each check looked at.

    Findings quote the run's files, so every text is redacted of `secrets` (and key-shaped
    strings) here, once for all checks: the report never repeats a secret it found."""

    secrets: frozenset[str] = frozenset()
    items: list[Finding] = field(default_factory=list)
    examined: dict[str, list[str]] = field(default_factory=dict)

    def add(
        self,
        check: str,
        message: str,
        *,
        file: str | None = None,
        where: str | None = None,
        expected: Any = None,
        found: Any = None,
        severity: Severity = "error",
    ) -> None:
        if check not in CHECKS:
            raise KeyError(f"unknown audit check {check!r}")

        def clean(value: Any) -> str | None:
            return None if value is None else redact(str(value), self.secrets)

        self.items.append(
            Finding(
                check,
                severity,
                redact(message, self.secrets),
                clean(file),
                clean(where),
                clean(expected),
                clean(found),
            )
        )

    def saw(self, check: str, what: str) -> None:
        """Note what `check` examined, so a clean verdict says what it rests on."""
        self.examined.setdefault(check, []).append(what)


@dataclass
class AuditResult:
    run_dir: str
    strict: bool
    findings: list[Finding]
    examined: dict[str, list[str]]
    facts: dict[str, Any]
    seconds: float

    def failing(self) -> list[Finding]:
        """The findings that fail the audit: errors, plus warnings under --strict."""
        return [f for f in self.findings if f.severity == "error" or self.strict]

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if self.failing() else EXIT_CLEAN

    @property
    def verdict(self) -> str:
        n_fail = len(self.failing())
        n_warn = len(self.findings) - n_fail
        if n_fail:
            return f"{n_fail} finding(s)" + (f", {n_warn} warning(s)" if n_warn else "")
        return "clean" + (f" ({n_warn} warning(s))" if n_warn else "")

    def status(self, check: str) -> str:
        """`fail`, `warn`, `pass` or `n/a` (nothing to examine, e.g. no model calls)."""
        mine = [f for f in self.findings if f.check == check]
        if any(f.severity == "error" or self.strict for f in mine):
            return "fail"
        if mine:
            return "warn"
        return "pass" if check in self.examined else "n/a"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "strict": self.strict,
            "seconds": round(self.seconds, 3),
            "facts": self.facts,
            "checks": {
                name: {
                    "status": self.status(name),
                    "guards": what,
                    "examined": self.examined.get(name, []),
                }
                for name, what in CHECKS.items()
            },
            "findings": [f.to_dict() for f in self.findings],
        }
