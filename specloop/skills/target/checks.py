"""Check kinds for part B's contracts (registered with the contracts' closed registry on import):
a notebook's saved image outputs, a JSON list's length, the bug-fix report closed, the guidance's
numbers against tech.json."""

from __future__ import annotations

import json

from specloop.skills.contracts.checks import Check, CheckEnv, check_kind


@check_kind("notebook_images")
class NotebookImages(Check):
    """The executed notebook holds at least `min` image outputs and no error output."""

    path: str
    min: int = 1

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        from specloop.skills.target.notebook import errors, image_outputs

        p = env.path(self.path)
        n, errs = image_outputs(p), errors(p)
        if errs:
            return False, f"{p.name} saved an error output: {errs[0]}"
        return n >= self.min, f"{p.name} holds {n} image output(s), needs >= {self.min}"


@check_kind("json_list")
class JsonList(Check):
    """A JSON field is a list with at least `min` items."""

    path: str
    field: str
    min: int = 1

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        value = json.loads(env.path(self.path).read_text(encoding="utf-8")).get(self.field)
        n = len(value) if isinstance(value, list) else -1
        return n >= self.min, f"{self.field} has {max(n, 0)} item(s), needs >= {self.min}"


@check_kind("bugfix_closed")
class BugfixClosed(Check):
    """bugfix_report.json: the run passed, every critical issue is fixed, the final tests passed."""

    path: str

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        report = json.loads(env.path(self.path).read_text(encoding="utf-8"))
        failed = [t["name"] for t in report["final_tests"] if not t["ok"]]
        ok = report["closed"]
        detail = (
            f"run {'passed' if report['run_ok'] else 'failed'}, {report['open_critical']} critical issue(s) open"
            + (f", failed: {', '.join(failed)}" if failed else "")
        )
        return ok, detail


@check_kind("guidance_agrees")
class GuidanceAgrees(Check):
    """The guidance's numbers block equals what tech.json's measurements give now."""

    path: str
    tech: str
    template_fields = ("path", "tech", "only_when")

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        from specloop.skills.target.guidance import disagreements, read_numbers

        stated = read_numbers(env.path(self.path))
        problems = disagreements(stated, json.loads(env.path(self.tech).read_text(encoding="utf-8")))
        return not problems, problems[0] if problems else "every number agrees with tech.json"


@check_kind("rules_recorded")
class RulesRecorded(Check):
    """CLAUDE.local.md or CLAUDE.inherited.md exists in `dir` and its change log has a complete row."""

    dir: str
    template_fields = ("dir", "only_when")

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        root = env.path(self.dir)
        for name in ("CLAUDE.local.md", "CLAUDE.inherited.md"):
            p = root / name
            if not p.is_file():
                continue
            log = p.read_text(encoding="utf-8").partition("## Change log")[2]
            rows = [r for r in log.splitlines() if r.startswith("| ") and not r.startswith("| #")]
            complete = [r for r in rows if all(c.strip() for c in r.strip("|").split("|"))]
            if not rows:
                return False, f"{name} has an empty change log"
            if len(complete) != len(rows):
                return False, f"{name}: {len(rows) - len(complete)} change-log row(s) miss a field"
            return True, f"{name}: {len(rows)} change-log row(s), each with rule, source and date"
        return False, "neither CLAUDE.local.md nor CLAUDE.inherited.md exists"
