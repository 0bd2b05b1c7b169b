"""Rich progress bars that cost nothing when switched off (other ranks, `progress=False`)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class Bar:
    """One progress bar; `enabled=False` makes every call a no-op."""

    def __init__(self, description: str, total: int, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.description = description
        self.total = total

    def __enter__(self) -> Bar:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            fields = {"info": info} if info is not None else {}
            self._progress.update(self._task, advance=n, **fields)

    def update(
        self, *, description: str | None = None, info: str | None = None, completed: int | None = None
    ) -> None:
        if self._progress is not None and self._task is not None:
            kw: dict[str, object] = {}
            if description is not None:
                kw["description"] = description
            if info is not None:
                kw["info"] = info
            if completed is not None:
                kw["completed"] = completed
            self._progress.update(self._task, **kw)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)


def say(message: str, *, enabled: bool = True) -> None:
    if enabled:
        console.print(message, highlight=False, soft_wrap=True, markup=False)
