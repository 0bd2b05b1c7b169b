"""`specloop chat`: a terminal conversation that starts, steers and explains a DEFT run, or creates a
project from a requirement.

Rendering and input only; what a message means and what it does live in `graph.chat` (the session),
`graph.chat_router` and `graph.chat_runner`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.rule import Rule
from rich.text import Text

if TYPE_CHECKING:
    from specloop.agents.chat import Turn
    from specloop.graph.chat import ChatSession
    from specloop.graph.chat_runner import ChatEvent

console = Console(highlight=False, soft_wrap=True)
PROMPT = "you › "
RECAP_TURNS = 8
RECAP_CHARS = 160


def _assistant(text: str) -> None:
    console.print(Text.assemble(("specloop › ", "bold green"), text))


def _render_turns(turns: list[Turn]) -> None:
    for turn in turns:
        if turn["role"] == "assistant" and turn["text"]:
            _assistant(turn["text"])
        elif turn["role"] == "tool":
            console.print(Markdown(turn["text"]))


def _render_event(event: ChatEvent) -> None:
    """Called from the run's thread when it stops somewhere the person should hear about."""
    from specloop.graph.chat_runner import GateReached, RunEnded, RunFailed, RunPaused

    if isinstance(event, GateReached):
        console.print(Rule(event.title))
        console.print(Markdown(event.summary))
        console.print(Rule())
        _assistant(event.question)
    elif isinstance(event, RunEnded):
        style = {0: "green", 3: "yellow", 4: "cyan"}.get(event.outcome.exit_code, "red")
        console.print(Text(f"Run {event.outcome.run_dir.name} ended: {event.outcome.message}", style=style))
        console.print(event.next_hint)
    elif isinstance(event, RunPaused):
        _assistant(
            f"{event.run_dir.name} paused before {event.next_stage}. Continue it with: "
            f"specloop chat --resume {event.run_dir}"
        )
    elif isinstance(event, RunFailed):
        console.print(Text(f"Run {event.run_dir.name} stopped: {event.message}", style="red"))


def _read() -> str | None:
    """One line from the person; None at end of input. Piped input is echoed so a scripted
    session reads like a conversation."""
    if sys.stdin.isatty():
        try:
            return console.input(Text(PROMPT, style="bold cyan"))
        except EOFError:
            return None
    line = sys.stdin.readline()
    if not line:
        return None
    console.print(Text.assemble((PROMPT, "bold cyan"), line.rstrip("\n")))
    return line.rstrip("\n")


def _settle(session: ChatSession) -> None:
    """A run on its way to the gate is waited for, so that its summary and question end the reply."""
    while not session.settle(0.5):
        pass


def _close(session: ChatSession) -> None:
    if not sys.stdin.isatty() and session.busy:
        # A script's last line is not someone walking away: the run it approved finishes first.
        _assistant(f"Input ended; waiting for {session.run_dir.name} to finish (Ctrl-C pauses it instead).")
        try:
            while not session.wait(0.5):
                pass
            return
        except KeyboardInterrupt:
            pass
    pausing = session.close()
    if pausing is None:
        if session.run_dir is not None:
            _assistant(f"Closed. Reopen this run with: specloop chat --resume {session.run_dir}")
        return
    _assistant(pausing + " Waiting for the current stage to finish (Ctrl-C again leaves now).")
    try:
        while not session.wait(0.5):
            pass
    except KeyboardInterrupt:
        _assistant(
            f"Left mid-stage; the run continues from its last finished stage with: specloop chat --resume {session.run_dir}"
        )
        raise typer.Exit(130) from None


def chat_command(
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The workspace a run uses when a message names none."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Reopen a run directory: at the gate, mid-run, or finished."
    ),
    llm: str | None = typer.Option(
        None,
        "--llm",
        help="Chat model for understanding messages (and for the runs it starts): offline (default: "
        "a small intent parser), openai:<model>, anthropic:<model>, openai-compatible:<url>:<model>.",
    ),
) -> None:
    """Talk to the DEFT loop (start a run from a sentence, approve it at the gate, ask for status, the report, or why an iteration went worse), or create a project from a requirement and answer its questions."""
    from specloop.agents.chat_intents import QUIT, parse_intent
    from specloop.graph.chat import ChatSession

    with ChatSession(workspace=workspace, llm=llm, notify=_render_event) as session:
        console.print(
            f"specloop chat · {session.policy.name} · say “help” for what I understand, “quit” to close.",
            style="dim",
        )
        if resume is not None:
            reopened = session.reopen(resume)
            for turn in [t for t in reopened.history if t["text"]][-RECAP_TURNS:]:
                who = {"user": "you › ", "assistant": "specloop › "}.get(turn["role"], "")
                first = turn["text"].strip().splitlines()[0]
                console.print(Text(f"(earlier) {who}{first[:RECAP_CHARS]}", style="dim"))
            _assistant(reopened.note)
            if reopened.event is not None:
                _render_event(reopened.event)
            _settle(session)
        while True:
            try:
                text = _read()
                if text is None or parse_intent(text).action == QUIT:
                    break
                if text.strip():
                    _render_turns(session.say(text))
                    _settle(session)
            except KeyboardInterrupt:
                break
        _close(session)
