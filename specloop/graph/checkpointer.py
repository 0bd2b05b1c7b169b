"""Checkpointer selection: SQLite in the run directory by default, Postgres by URL for teams."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from specloop.errors import SpecloopError

SQLITE_FILE = "checkpoints.sqlite"


@contextmanager
def open_checkpointer(run_dir: Path, url: str | None = None) -> Iterator[BaseCheckpointSaver]:
    if url and url.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError:
            raise SpecloopError(
                "a Postgres checkpointer needs the langgraph-checkpoint-postgres package "
                "(pip install langgraph-checkpoint-postgres)."
            ) from None
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver
        return
    if url:
        raise SpecloopError(
            f"unsupported checkpointer URL {url!r}; use a postgresql:// URL or none for SQLite."
        )
    conn = sqlite3.connect(run_dir / SQLITE_FILE, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()
