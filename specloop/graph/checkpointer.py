"""Checkpointer selection: SQLite in the run directory by default, Postgres by URL for teams.

A Postgres URL is checked (it connects within CONNECT_TIMEOUT_S and the tables can be set up)
before a run directory exists, and every failure is one sentence with the password masked.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from specloop.errors import SpecloopError

SQLITE_FILE = "checkpoints.sqlite"
POSTGRES_SCHEMES = ("postgres://", "postgresql://")
CONNECT_TIMEOUT_S = 10
_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s]*@")


class CheckpointerError(SpecloopError):
    default_rule = "checkpointer"


def shown_url(url: str) -> str:
    """The URL as it may be printed: any password replaced by ***."""
    return _PASSWORD.sub(r"\1***@", url)


def check_checkpointer(url: str | None) -> None:
    """Raise one sentence if `url` is not a checkpointer specloop can use right now (None: SQLite)."""
    if url:
        with _postgres(url):
            pass


@contextmanager
def open_checkpointer(run_dir: Path, url: str | None = None) -> Iterator[BaseCheckpointSaver]:
    if url:
        with _postgres(url) as saver:
            yield saver
        return
    conn = sqlite3.connect(run_dir / SQLITE_FILE, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@contextmanager
def _postgres(url: str) -> Iterator[BaseCheckpointSaver]:
    if not url.startswith(POSTGRES_SCHEMES):
        raise CheckpointerError(
            f"unsupported checkpointer URL {shown_url(url)!r}; use a postgresql:// URL or none for SQLite."
        )
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        from psycopg.rows import dict_row
    except ImportError:
        raise CheckpointerError(
            "a Postgres checkpointer needs the langgraph-checkpoint-postgres and psycopg packages "
            "(pip install langgraph-checkpoint-postgres 'psycopg[binary]')."
        ) from None
    try:
        params = conninfo_to_dict(url)
        conninfo = make_conninfo(url, connect_timeout=params.get("connect_timeout") or CONNECT_TIMEOUT_S)
        conn = psycopg.Connection.connect(
            conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
    except psycopg.Error as exc:
        raise CheckpointerError(
            f"the checkpointer {shown_url(url)} does not connect: {_first_line(exc, url)}."
        ) from None
    with conn:
        saver = PostgresSaver(conn)
        try:
            saver.setup()
        except psycopg.Error as exc:
            raise CheckpointerError(
                f"the checkpointer {shown_url(url)} connects but its tables cannot be set up: "
                f"{_first_line(exc, url)}."
            ) from None
        yield saver


def _first_line(exc: Exception, url: str) -> str:
    """The driver's first line, with the URL (and so its password) never repeated in it."""
    lines = str(exc).strip().splitlines()
    line = shown_url(lines[0].rstrip(".")) if lines else type(exc).__name__
    return line.replace(url, shown_url(url))
