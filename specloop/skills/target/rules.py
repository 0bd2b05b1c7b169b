"""B1: the key rules of the inherited CLAUDE.md, and the record of what was inherited or changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from specloop.errors import SpecloopError

_BULLET = re.compile(r"^- (.+)$")


@dataclass(frozen=True)
class RuleChange:
    rule: str
    section: str
    source: str
    date: str


def key_rules(text: str, *, width: int = 140) -> list[str]:
    """Each bullet's first sentence (continuation lines joined), prefixed by its section: what the
    status output shows."""
    bullets: list[tuple[str, str]] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif m := _BULLET.match(line):
            bullets.append((section, m.group(1).strip()))
        elif line.startswith("  ") and line.strip() and bullets:
            bullets[-1] = (bullets[-1][0], f"{bullets[-1][1]} {line.strip()}")
    rules = []
    for section, bullet in bullets:
        first = re.split(r"(?<=\.)\s", bullet, maxsplit=1)[0]
        first = first if len(first) <= width else first[: width - 1].rstrip() + "…"
        rules.append(f"{section}: {first}" if section else first)
    return rules


def read_org_rules(path: Path) -> list[tuple[str, str]]:
    """(section, rule) of every `- ` bullet in an organisation's rules file (Markdown)."""
    if not path.is_file():
        raise SpecloopError(f"{path}: no such rules file.", rule="rules-file")
    out, section = [], "Organisation rules"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip() or section
        elif m := _BULLET.match(line):
            out.append((section, m.group(1).strip()))
        elif line.strip() and not line.startswith("#") and not line.startswith("  "):
            raise SpecloopError(
                f"{path}:{n}: a rules file holds `## Section` headings and `- rule` bullets only.",
                rule="rules-file",
            )
    if not out:
        raise SpecloopError(f"{path}: holds no `- rule` bullets.", rule="rules-file")
    return out


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_local(
    base: str, org: list[tuple[str, str]], source: str, date: dt.date
) -> tuple[str, list[RuleChange]]:
    """CLAUDE.local.md: the inherited rules, the organisation's added under their sections, and a
    change log with one row per change (rule, source, date)."""
    changes = [
        RuleChange(rule, section, source, date.isoformat()) for section, rule in org if rule not in base
    ]
    lines = [
        "# Local rules (CLAUDE.local.md)",
        "",
        f"Inherited from `CLAUDE.md` (sha256 `{sha256_text(base)}`) and customised with `{source}`.",
        "",
        "## Inherited rules",
        "",
        base.strip(),
        "",
        "## Organisation rules",
        "",
    ]
    sections: dict[str, list[str]] = {}
    for c in changes:
        sections.setdefault(c.section, []).append(c.rule)
    for section, rules in sections.items():
        lines += [f"### {section}", "", *[f"- {r}" for r in rules], ""]
    lines += ["## Change log", "", "| # | change | rule | source | date |", "|---|---|---|---|---|"]
    lines += [f"| {i} | added | {c.rule} | {c.source} | {c.date} |" for i, c in enumerate(changes, 1)]
    return "\n".join(lines) + "\n", changes


def render_inherited(base: str, date: dt.date) -> str:
    """CLAUDE.inherited.md: everything inherited, unchanged, with the file's hash and the date."""
    rules = key_rules(base)
    lines = [
        "# Inherited rules (CLAUDE.inherited.md)",
        "",
        "Every rule of `CLAUDE.md` is inherited unchanged; no organisation rules were given.",
        "",
        "## Change log",
        "",
        "| # | change | file | sha256 | date |",
        "|---|---|---|---|---|",
        f"| 1 | inherited unchanged | CLAUDE.md | `{sha256_text(base)}` | {date.isoformat()} |",
        "",
        f"## Key rules ({len(rules)})",
        "",
        *[f"- {r}" for r in rules],
    ]
    return "\n".join(lines) + "\n"
