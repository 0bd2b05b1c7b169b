"""The offline chat policy: a small intent parser for what people say to `specloop chat`.

It understands a handful of requests — start a run (workspace, iterations, epochs, FAR target),
create a project from a requirement (English or Chinese, "create a project that …", "帮我做一个…"),
answers to a create run's questions ("Q1 a", "1a 2b"), status, the report, why an iteration went
the way it did, approval at the gate, stopping after the current iteration, help and quit — says
plainly what it understood, and asks back when a message is ambiguous or outside what it knows. It
never guesses a workspace or a target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specloop.agents.planner import DEFAULTS, kpi_target_text

START_RUN = "start_run"
CREATE = "create_project"
ANSWER = "answer_questions"
STATUS = "status"
REPORT = "report"
EXPLAIN = "explain_iteration"
APPROVE = "approve"
STOP_AFTER = "stop_after_iteration"
HELP = "help"
QUIT = "quit"

WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_COUNT = r"(\d+|" + "|".join(WORDS) + r")"

CAPABILITIES = (
    "I can: start a run (“run the DEFT loop on ~/ws with 2 iterations and a 0.5% target”), "
    "create a project (“create a project that recognises handwritten digits on a laptop CPU”, "
    "“帮我做一个手写数字识别的小模型”) and take answers to its questions (“Q1 a”, “1a 2b”), "
    "tell you the status (“what's the status”), show the report (“show me the report”), "
    "explain an iteration (“why did iteration 2 get worse”), approve at the gate (“go”), "
    "stop after the current iteration (“stop after this iteration”), and close the chat (“quit”)."
)

_QUIT = re.compile(r"^(quit|exit|bye|goodbye|q|close|close the chat|close chat|leave)$")
_APPROVE = re.compile(
    r"^(go|go ahead|go for it|yes|y|yep|yeah|ok|okay|ok go|approve|approved|i approve|approve it|"
    r"approve the run|proceed|start it|let'?s go|looks good|looks good, go|sounds good|lgtm)( please)?$"
    r"|^(好|好的|可以|行|开始|开始吧|同意|确认|批准|继续)$"
)
# "create a project that …", "make me a model that …", "build a classifier for …", "I need a model …"
_CREATE_EN = re.compile(
    r"^(?:(?:please|can you|could you|would you|i'?d like you to|i want you to)\s+)?"
    r"(?:(?:create|make|build|generate|scaffold|set up|develop|write|train|fine-?tune)\s+(?:me\s+|us\s+)?"
    r"|(?:i|we)\s+(?:want|need|would like|'?d like)\s+)"
    r"(?:a|an|one)\s+(?:[\w'-]+\s+){0,4}?"
    r"(?:project|model|classifier|app|application|service|system|detector|predictor|recogni[sz]er|"
    r"forecaster|pipeline|network)s?\b"
)
# "帮我做一个…", "创建一个项目…", "我想训练一个…模型", "给我开发一套…"
_CREATE_ZH = re.compile(
    r"^(?:请|麻烦)?(?:帮我|帮忙|给我|替我|为我|我想|我要|我需要|我们需要|我们想)?\s*"
    r"(?:做|创建|新建|搭建|开发|生成|构建|训练|写)\s*(?:一个|一套|个|项目)"
)
_OUT = re.compile(
    r"(?:--out[= ]|\b(?:into|out to|output (?:to|in|into)|save (?:it )?(?:in|to|under))\s+"
    r"|(?:放在|输出到|保存到|存到)\s*)"
    r"(\"[^\"]+\"|'[^']+'|(?:~|\.{1,2})?/\S*)",
    re.IGNORECASE,
)
# one answer to a create run's question: "q1 a", "q2: b", "1a", "question 3 is c", "问题1选a"
_ANSWER_ONE = (
    r"(?:q|question\s*|问题\s*|第\s*)?(\d{1,2})\s*(?:题)?\s*"
    r"(?:[:=).\-：]|->|→|is|选|选择)?\s*([a-z])(?![a-z])"
)
_ANSWERS = re.compile(r"^(?:(?:my\s+)?answers?\s*[:：]?\s*)?(?:" + _ANSWER_ONE + r"[\s,;，、]*(?:and\s+)?)+$")
_STOP_AFTER = re.compile(
    r"\bstop\b.*\b(after|at the end of|once|when)\b.*\b(iteration|round|this one|baseline)\b"
    r"|\bfinish (this|the current) (iteration|round)\b.*\bstop\b"
    r"|\bmake (this|it) the (last|final) (iteration|round)\b"
)
_BARE_STOP = re.compile(
    r"^(stop|stop it|stop now|stop the run|stop the loop|stop everything|abort|cancel|halt|kill it)( please)?$"
)
_START_VERB = re.compile(r"\b(run|rerun|start|launch|kick(?:ing)? off|begin)\b")
_START_OBJECT = re.compile(r"\b(deft|loop|a (new )?run|another run|training)\b")
_EXPLAIN = re.compile(
    r"\b(why|explain|what happened|what went wrong|how come|what changed)\b"
    r"|\bwhat did (iteration|iter|round|the baseline)"
)
_REPORT = re.compile(r"\b(report|results?|summary|summarize|summarise)\b")
_STATUS = re.compile(
    r"\b(status|progress|where are we|where is it|where's it|how'?s it going|how is it going|"
    r"how is the run|how'?s the run|what'?s (it|the run) doing|what'?s happening|how far|"
    r"are we there yet|is it done|is it finished|still running)\b"
)
# Requests outside what the chat does; a word like "results" in them must not make them a report request.
_UNSUPPORTED = re.compile(
    r"\b(delete|remove|erase|wipe|clean ?up|rm|drop|overwrite|modify|change|edit|rename|move|upload|deploy|"
    r"push|send|email|install|download)\b"
)
_HELP = re.compile(r"^(help|\?|what can you do\??|commands|what do you understand\??)$")
_ITERATION = re.compile(r"\b(?:iteration|iter|round)\s*#?\s*" + _COUNT + r"\b")
_ITER_LABEL = re.compile(r"\biter(\d+)\b")
_ITERATIONS = re.compile(
    r"\b" + _COUNT + r"\s+(?:more\s+)?(?:iterations?|rounds?|iters?)\b"
    r"|\b(?:max(?:imum)?\s+)?(?:iterations?|rounds?)\s*(?:of|=|:|to)?\s*" + _COUNT + r"\b"
)
_EPOCHS = re.compile(
    r"\b" + _COUNT + r"\s+(?:baseline\s+)?epochs?\b|\bepochs?\s*(?:of|=|:)?\s*" + _COUNT + r"\b"
)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b)")
_BARE_TARGET = re.compile(r"\b(?:target|far|kpi)\s*(?:of|=|:|<|below|under|to)?\s*(\d+(?:\.\d+)?)\b(?!\s*%)")
_PATH_AFTER = re.compile(
    r"\b(?:on|in|at|for|workspace|ws)\s+(\"[^\"]+\"|'[^']+'|\S+)",
    re.IGNORECASE,
)
_PATHLIKE = re.compile(r"(?:^|(?<=\s))(\"[^\"]*[/~][^\"]*\"|'[^']*[/~][^']*'|(?:~|\.{1,2})?/\S*|~\S*)")


@dataclass(frozen=True)
class Intent:
    """What a message asks for: an action with its arguments (None when not understood) and the
    sentence to say back — what was understood, or the question when it was not."""

    action: str | None
    said: str
    args: dict[str, Any] = field(default_factory=dict)


def normalize(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.rstrip(".!。！").strip()


def _count(word: str) -> int:
    return WORDS[word] if word in WORDS else int(word)


def _first_group(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None)


def _clean_path(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    return token.rstrip(".,;:!?)")


def _looks_like_path(token: str, cwd: Path) -> bool:
    if token.startswith(("~", "/", "./", "../")) or "/" in token:
        return True
    return bool(token) and (cwd / token).is_dir()


def find_workspace(text: str, cwd: Path) -> str | None:
    """The workspace path a message names, `~` expanded and made absolute, or None."""
    for match in _PATH_AFTER.finditer(text):
        token = _clean_path(match.group(1))
        if _looks_like_path(token, cwd):
            return str((cwd / Path(token).expanduser()).resolve())
    for match in _PATHLIKE.finditer(text):
        token = _clean_path(match.group(1))
        if token and token not in ("/", "~/"):
            return str((cwd / Path(token).expanduser()).resolve())
    return None


def _start_run(raw: str, text: str, default_workspace: Path | None, cwd: Path) -> Intent:
    args: dict[str, Any] = {}
    workspace = find_workspace(raw, cwd)
    if workspace is None and default_workspace is None:
        return Intent(None, "Which workspace should I run it on? Say e.g. “run the DEFT loop on ~/ws”.")
    args["workspace"] = workspace or str(default_workspace)
    if m := _ITERATIONS.search(text):
        args["max_iterations"] = _count(_first_group(m))
        if args["max_iterations"] < 1:
            return Intent(None, "A run needs at least 1 iteration after the baseline; how many should it do?")
    if m := _EPOCHS.search(text):
        args["epochs"] = _count(_first_group(m))
        if args["epochs"] < 1:
            return Intent(None, "Training needs at least 1 epoch; how many should the baseline train?")
    percents = sorted({float(p) for p in _PERCENT.findall(text)})
    if len(percents) > 1:
        listed = " or ".join(f"{p:g}%" for p in percents)
        return Intent(None, f"I see more than one rate ({listed}); which one is the FAR target?")
    if percents:
        if not 0 < percents[0] < 100:
            return Intent(
                None, f"A FAR target of {percents[0]:g}% is not a rate I can aim for; say e.g. 0.5%."
            )
        args["far_target_percent"] = percents[0]
    elif m := _BARE_TARGET.search(text):
        return Intent(
            None,
            f"Did you mean a FAR target of {m.group(1)}%? Say it with a % sign, e.g. “target {m.group(1)}%”.",
        )
    return Intent(START_RUN, "Understood: " + describe_run(args) + ".", args)


def describe_run(args: dict[str, Any]) -> str:
    """`run the DEFT loop on /x/ws, 2 iterations, target FAR < 0.5%` (defaults named as such)."""
    n = args.get("max_iterations")
    iterations = (
        f"{n} iteration{'s' if n != 1 else ''}"
        if n
        else f"{DEFAULTS['max_iterations']} iterations (the default)"
    )
    pct = args.get("far_target_percent")
    target = (
        f"FAR < {pct:g}%" if pct is not None else f"{kpi_target_text(DEFAULTS['far_target'])} (the default)"
    )
    parts = [f"run the DEFT loop on {args['workspace']}", iterations, f"target {target}"]
    if args.get("epochs"):
        parts.append(f"{args['epochs']} baseline epoch{'s' if args['epochs'] != 1 else ''}")
    return ", ".join(parts)


def _create(raw: str, cwd: Path) -> Intent:
    """The requirement is the message itself (the requirements parser reads it as written), less an
    output folder named with “into PATH” / “--out PATH” / “放在 PATH”."""
    args: dict[str, Any] = {}
    requirement = raw.strip()
    if m := _OUT.search(requirement):
        args["out"] = str((cwd / Path(_clean_path(m.group(1))).expanduser()).resolve())
        requirement = (requirement[: m.start()] + requirement[m.end() :]).strip(" ,;，")
    args = {"requirement": requirement, **args}
    where = f" in {args['out']}" if "out" in args else ""
    return Intent(CREATE, f"Understood: create a project{where} from “{requirement}”.", args)


def _answers(text: str) -> Intent:
    answers = {f"Q{int(n)}": letter for n, letter in re.findall(_ANSWER_ONE, text)}
    listed = ", ".join(f"{q} → {a}" for q, a in answers.items())
    return Intent(ANSWER, f"Understood: {listed}.", {"answers": answers})


def _explain(text: str) -> Intent:
    if "baseline" in text:
        return Intent(
            EXPLAIN, "Understood: explain the baseline from the run's ledger.", {"iteration": "baseline"}
        )
    m = _ITERATION.search(text) or _ITER_LABEL.search(text)
    if m:
        n = _count(m.group(1))
        return Intent(
            EXPLAIN, f"Understood: explain iteration {n} from the run's ledger.", {"iteration": str(n)}
        )
    return Intent(
        EXPLAIN, "Understood: explain the latest iteration from the run's ledger.", {"iteration": "latest"}
    )


def parse_intent(message: str, *, default_workspace: Path | None = None, cwd: Path | None = None) -> Intent:
    """Read one message. `default_workspace` is used when a run request names none; relative
    paths resolve against `cwd` (the current directory by default)."""
    cwd = cwd or Path.cwd()
    text = normalize(message)
    if not text:
        return Intent(None, "Say what you would like to do. " + CAPABILITIES)
    if _QUIT.match(text):
        return Intent(QUIT, "Closing the chat.")
    if _HELP.match(text):
        return Intent(HELP, CAPABILITIES)
    if _CREATE_EN.match(text) or _CREATE_ZH.match(text):
        return _create(message, cwd)  # before the refusals: "… change detection", "… and deploy it"
    if _ANSWERS.match(text):
        return _answers(text)
    if _UNSUPPORTED.search(text):
        return Intent(
            None, f"I did not understand “{message.strip()}”; that is not something I do. {CAPABILITIES}"
        )
    if _APPROVE.match(text.replace(",", "")):
        return Intent(APPROVE, "Understood: approve the run at the gate.")
    if _STOP_AFTER.search(text):
        return Intent(STOP_AFTER, "Understood: stop the loop after the current iteration.")
    if _BARE_STOP.match(text):
        return Intent(
            None,
            "Stop how? Say “stop after this iteration” to let the loop finish the current iteration and "
            "write its report, or “quit” to close the chat (a running stage finishes first, and the run "
            "can be resumed later).",
        )
    if _START_VERB.search(text) and (_START_OBJECT.search(text) or find_workspace(message, cwd)):
        return _start_run(message, text, default_workspace, cwd)
    if _EXPLAIN.search(text):
        return _explain(text)
    if _REPORT.search(text) or "报告" in text:
        return Intent(REPORT, "")
    if _STATUS.search(text) or re.search(r"状态|进度|怎么样了|到哪", text):
        return Intent(STATUS, "")
    return Intent(None, f"I did not understand “{message.strip()}”. {CAPABILITIES}")
