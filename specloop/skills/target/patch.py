"""B3 with a model: what the coder's model is shown of a failure (the traceback and the project files
it names, bounded, secrets masked) and how its unified diff is checked and applied — by `git apply`,
which applies every hunk or none."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from specloop.ledger.redaction import redact
from specloop.skills.target.fixes import CONFIG

MAX_OUTPUT_CHARS = 6000  # the tail of the failed run's output
MAX_FILE_CHARS = 20000  # per file shown; a longer file is cut (its diff then rarely applies)
MAX_FILES = 4
_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+', re.M)
_DIFF_BLOCK = re.compile(r"```(?:diff|patch)?[ \t]*\n(.*?)```", re.DOTALL)
_GIT_FAILED = re.compile(r"^error: patch failed: (.+):(\d+)$", re.M)
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)


class PatchRejected(Exception):
    """The model's diff was not applied; the message is one sentence naming the file (and hunk)."""


@dataclass(frozen=True)
class FailureView:
    """What the model is shown: the output's tail and the files it names (paths relative to the
    project), every text with the run's secrets masked."""

    output: str
    files: dict[str, str]

    def prompt(self, signature: str) -> str:
        shown = "\n\n".join(f"--- {path}\n```\n{text}\n```" for path, text in self.files.items())
        return (
            f"The 1-epoch run of this project failed with `{signature}` and no offline fix rule knows "
            "this error.\n\nThe end of its output:\n```\n"
            f"{self.output}\n```\n\nThe project files it names (paths relative to the project root):\n\n"
            f"{shown}\n\nAnswer with one unified diff (`diff --git a/PATH b/PATH`, `--- a/PATH`, "
            "`+++ b/PATH`, hunks with three lines of context) in a ```diff block that fixes the cause, "
            "changing only the files shown above. No other text is needed."
        )


def named_files(output: str, project: Path) -> list[str]:
    """The project files the traceback names, innermost first, then the config; at most MAX_FILES."""
    root = project.resolve()
    found: list[str] = []
    for match in reversed(_FRAME.findall(output)):
        path = Path(match).resolve()
        if path.is_file() and path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            if rel not in found and not rel.startswith(("debug-", ".")):
                found.append(rel)
    if (root / CONFIG).is_file() and CONFIG not in found:
        found.append(CONFIG)
    return found[:MAX_FILES]


def failure_view(output: str, project: Path, secrets: frozenset[str]) -> FailureView:
    files = {}
    for rel in named_files(output, project):
        text = (project / rel).read_text(encoding="utf-8", errors="replace")
        files[rel] = redact(text[:MAX_FILE_CHARS], secrets)
    return FailureView(redact(output[-MAX_OUTPUT_CHARS:], secrets), files)


def diff_of(answer: str) -> str | None:
    """The unified diff in the model's answer (a fenced block, or the bare answer), or None."""
    for block in [*_DIFF_BLOCK.findall(answer), answer]:
        text = block.strip("\n")
        if re.search(r"^--- ", text, re.M) and re.search(r"^\+\+\+ ", text, re.M) and _HUNK.search(text):
            start = re.search(r"^(diff --git|--- )", text, re.M)
            return text[start.start() :] + "\n" if start else None
    return None


def _git_apply(project: Path, diff: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "apply", "--whitespace=nowarn", *args, "-"],
        cwd=project,
        input=diff,
        capture_output=True,
        text=True,
        timeout=60,
    )


def touched(project: Path, diff: str) -> list[str]:
    """The paths the diff changes, as git reads it; a created, deleted or renamed file is refused."""
    out = _git_apply(project, diff, "--numstat", "--summary")
    if out.returncode != 0:
        raise PatchRejected(f"the model's answer is not a diff git can read: {_first_error(out.stderr)}")
    paths, changes = [], []
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            paths.append(parts[2])
        elif line.strip():
            changes.append(line.strip())
    if changes:
        raise PatchRejected(f"the model's diff {changes[0]}; only changes to the files shown are applied")
    return paths


def apply_diff(project: Path, diff: str, allowed: list[str]) -> list[str]:
    """Apply `diff` to the project when it changes only `allowed` files and every hunk applies
    cleanly (`git apply --check`, then `git apply`); else raise PatchRejected, changing nothing."""
    paths = touched(project, diff)
    if not paths:
        raise PatchRejected("the model's diff changes no file")
    outside = [p for p in paths if p not in allowed]
    if outside:
        raise PatchRejected(
            f"the model's diff changes {outside[0]}, which is not one of the files it was shown "
            f"({', '.join(allowed)})"
        )
    check = _git_apply(project, diff, "--check")
    if check.returncode != 0:
        raise PatchRejected(_why_not(diff, check.stderr))
    done = _git_apply(project, diff)
    if done.returncode != 0:  # --check passed a moment ago; git apply is all-or-nothing either way
        raise PatchRejected(_why_not(diff, done.stderr))
    return paths


def _first_error(stderr: str) -> str:
    return next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "git apply refused it")


def _why_not(diff: str, stderr: str) -> str:
    """One sentence: which file and hunk did not apply, from git's own message."""
    failed = _GIT_FAILED.search(stderr)
    if failed is None:
        return f"the model's diff does not apply: {_first_error(stderr)}"
    path, line = failed.group(1), int(failed.group(2))
    hunk = _hunk_number(diff, path, line)
    which = f"hunk {hunk} (at line {line})" if hunk else f"the hunk at line {line}"
    return f"the model's diff does not apply to {path}: {which} does not match the file"


def _hunk_number(diff: str, path: str, line: int) -> int | None:
    """The 1-based number, within `path`'s part of the diff, of the hunk that starts at `line`."""
    part = re.search(rf"^\+\+\+ b/{re.escape(path)}\n(.*?)(?=^diff --git |^--- |\Z)", diff, re.M | re.S)
    if part is None:
        return None
    starts = [int(m.group(1)) for m in _HUNK.finditer(part.group(1))]
    return starts.index(line) + 1 if line in starts else None
