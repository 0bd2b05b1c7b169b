"""The model registry on MLflow's tracking store and model registry.

One registered model (`changenet`) per workspace; each specloop version is an MLflow model version
whose tags hold the specloop record (version id, status, hashes, metrics) and whose run holds the
params, metrics and small files. The champion is MLflow's alias `champion`: moving it is one
database write, so the registry itself never shows two champions or none during a promotion.

The default store is SQLite under `results/registry/`; `--registry URI` or `SPECLOOP_REGISTRY_URI`
names another (a team's tracking server). mlflow is imported here only, inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specloop.errors import SpecloopError
from specloop.ledger.files import atomic_write_json, link_or_copy, read_json, sha256_file
from specloop.skills.registry.layout import CHAMPION_ALIAS, MODEL_NAME, WatchLayout

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

STATUSES = ("candidate", "champion", "rejected", "rolled_back", "archived")
METRICS = ("golden_far", "kpi_far", "holdout_far", "val_far")
ENV_URI = "SPECLOOP_REGISTRY_URI"
EXPERIMENT = "specloop-watch"
_TAGS = ("status", "created", "data_hash", "model_hash", "command", "golden_hash", "promoted_at", "round")


def quiet_mlflow() -> None:
    """No telemetry, no network, no INFO lines from MLflow or its migrations."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401  (its import configures its loggers; quiet them after)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def default_uri(ws: Path) -> str:
    return f"sqlite:///{WatchLayout(ws).store.resolve()}"


def resolve_uri(ws: Path, uri: str | None = None) -> str:
    """The store to use: the one given, else the environment's, else the one last used, else the default."""
    if uri:
        return uri
    if os.environ.get(ENV_URI):
        return os.environ[ENV_URI]
    record = WatchLayout(ws).registry_dir / "store.json"
    if record.is_file():
        return str(read_json(record).get("uri") or default_uri(ws))
    return default_uri(ws)


def _check_sqlite(uri: str) -> None:
    path = Path(uri.removeprefix("sqlite:///"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
        writable = os.access(path, os.W_OK)
    except (OSError, sqlite3.Error) as exc:
        raise SpecloopError(
            f"registry store {path} cannot be created or written ({type(exc).__name__}: {exc}); "
            "pass --registry with a writable location.",
            rule="registry-store",
        ) from None
    if not writable:
        raise SpecloopError(
            f"registry store {path} is not writable; pass --registry with a writable location.",
            rule="registry-store",
        )


def store_exists(ws: Path, uri: str | None = None) -> bool:
    """False for a default SQLite store that was never created (reading it would create it)."""
    uri = resolve_uri(ws, uri)
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def _record(mv: Any, ws: Path) -> dict[str, Any]:
    """The specloop view of an MLflow model version; its files resolve inside `ws` (a copied or moved
    workspace keeps working)."""
    tags = dict(mv.tags or {})
    metrics = json.loads(tags.get("metrics", "{}"))
    return {
        "version": tags.get("vid", f"mlflow-{mv.version}"),
        "status": tags.get("status", "candidate"),
        "created": tags.get("created", ""),
        "metrics": {k: metrics.get(k) for k in METRICS},
        "data_hash": tags.get("data_hash", ""),
        "model_hash": tags.get("model_hash", ""),
        "command": tags.get("command", ""),
        "golden_hash": tags.get("golden_hash", ""),
        "promoted_at": tags.get("promoted_at", ""),
        "round": tags.get("round", ""),
        "checkpoint": str(ws / tags["checkpoint"]) if tags.get("checkpoint") else "",
        "files": mv.source,
        "mlflow_version": int(mv.version),
        "run_id": mv.run_id,
    }


class ModelRegistry:
    """Versions, statuses and the champion alias of one workspace's ChangeNet models."""

    def __init__(self, ws: Path, uri: str | None = None) -> None:
        quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.ws = ws.resolve()
        self.layout = WatchLayout(self.ws)
        self.uri = resolve_uri(self.ws, uri)
        if self.uri.startswith("sqlite:///"):
            _check_sqlite(self.uri)
        try:
            self.client: MlflowClient = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            self._ensure_model()
        except SpecloopError:
            raise
        except Exception as exc:  # MLflow raises its own and SQLAlchemy's errors for a bad store
            raise SpecloopError(
                f"registry store {self.uri} cannot be opened ({type(exc).__name__}: {str(exc)[:160]}).",
                rule="registry-store",
            ) from None
        if self.uri != default_uri(self.ws):
            atomic_write_json(self.layout.registry_dir / "store.json", {"uri": self.uri})

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(MODEL_NAME)
        except MlflowException:
            self.client.create_registered_model(MODEL_NAME, description="specloop ChangeNet versions")

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return exp.experiment_id
        self.layout.artifacts.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(EXPERIMENT, artifact_location=self.layout.artifacts.as_uri())

    # ---- reading

    def _model_versions(self) -> list[Any]:
        return list(self.client.search_model_versions(f"name='{MODEL_NAME}'", max_results=10000))

    def versions(self) -> list[dict[str, Any]]:
        """Every version, newest first; the alias holder's status reads `champion`."""
        champ = self._champion_number()
        out = []
        for mv in self._model_versions():
            rec = _record(mv, self.ws)
            if int(mv.version) == champ:
                rec["status"] = "champion"
            out.append(rec)
        return sorted(out, key=lambda r: r["mlflow_version"], reverse=True)

    def _champion_number(self) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version)
        except MlflowException:
            return None

    def champion(self) -> dict[str, Any] | None:
        return next((v for v in self.versions() if v["status"] == "champion"), None)

    def get(self, vid: str) -> dict[str, Any]:
        versions = self.versions()
        for v in versions:
            if v["version"] == vid:
                return v
        known = ", ".join(v["version"] for v in versions[:5]) or "none yet"
        raise SpecloopError(
            f"{self.uri}: no model version {vid!r} in the registry (newest: {known}).", rule="unknown-version"
        )

    # ---- writing

    def register(
        self,
        *,
        checkpoint: Path,
        files: dict[str, Path],
        data_hash: str,
        command: str,
        metrics: dict[str, float | None],
        golden_hash: str,
        round_id: str = "",
    ) -> dict[str, Any]:
        """Copy the model and its files into `results/registry/versions/<vid>/` and add a candidate."""
        model_hash = sha256_file(checkpoint)
        created = int(time.time())
        vid = f"v{created}_{model_hash[:4]}"
        vdir = self.layout.version_dir(vid)
        vdir.mkdir(parents=True, exist_ok=True)
        model_path = vdir / "model.pth"
        link_or_copy(checkpoint, model_path)
        for name, src in files.items():
            shutil.copyfile(src, vdir / name)
        clean = {k: (None if metrics.get(k) is None else float(metrics[k])) for k in METRICS}
        atomic_write_json(vdir / "metrics.json", clean)
        run = self.client.create_run(self._experiment_id(), run_name=vid, tags={"specloop.version": vid})
        rid = run.info.run_id
        for key, value in {
            "data_hash": data_hash,
            "model_hash": model_hash,
            "command": command[:500],
        }.items():
            self.client.log_param(rid, key, value)
        for key, value in clean.items():
            if value is not None:
                self.client.log_metric(rid, key, value)
        self.client.set_terminated(rid)
        tags = {
            "vid": vid,
            "status": "candidate",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            "data_hash": data_hash,
            "model_hash": model_hash,
            "command": command[:500],
            "golden_hash": golden_hash,
            "round": round_id,
            "checkpoint": model_path.relative_to(self.ws).as_posix(),
            "metrics": json.dumps(clean),
        }
        self.client.create_model_version(MODEL_NAME, source=str(vdir), run_id=rid, tags=tags)
        return self.get(vid)

    def set_status(self, vid: str, status: str) -> None:
        if status not in STATUSES or status == "champion":
            raise ValueError(f"status {status!r}: use promote() for the champion")
        rec = self.get(vid)
        self.client.set_model_version_tag(MODEL_NAME, str(rec["mlflow_version"]), "status", status)

    def set_tag(self, vid: str, key: str, value: str) -> None:
        rec = self.get(vid)
        self.client.set_model_version_tag(MODEL_NAME, str(rec["mlflow_version"]), key, value)

    def promote(self, vid: str, *, displaced_status: str = "archived") -> dict[str, Any]:
        """Make `vid` the champion (one alias write), mark the one it displaces, rewrite the files."""
        from specloop.skills.registry.champion import write_champion_files

        rec = self.get(vid)
        old = self.champion()
        number = str(rec["mlflow_version"])
        self.client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, number)
        self.client.set_model_version_tag(MODEL_NAME, number, "status", "champion")
        self.client.set_model_version_tag(MODEL_NAME, number, "promoted_at", f"{time.time():.6f}")
        if old is not None and old["version"] != vid:
            self.set_status(old["version"], displaced_status)
        champ = self.get(vid)
        write_champion_files(self.ws, champ, self.uri)
        return champ

    def previous_champion(self) -> dict[str, Any] | None:
        """The last champion before the current one that is still healthy (not rolled back, not rejected)."""
        champ = self.champion()
        former = [
            v
            for v in self.versions()
            if v["promoted_at"]
            and v["status"] not in ("rolled_back", "rejected", "champion")
            and Path(v["checkpoint"]).is_file()
        ]
        former.sort(key=lambda v: float(v["promoted_at"]), reverse=True)
        if champ is not None:
            former = [v for v in former if float(v["promoted_at"]) < float(champ["promoted_at"] or "inf")]
        return former[0] if former else None

    def rollback(self, vid: str | None = None) -> dict[str, Any]:
        """Champion back to `vid` (default: the previous healthy champion); the current one is `rolled_back`."""
        champ = self.champion()
        target = self.get(vid) if vid else self.previous_champion()
        if target is None:
            raise SpecloopError(
                f"{self.uri}: there is no earlier healthy champion to roll back to.", rule="rollback"
            )
        if champ is not None and target["version"] == champ["version"]:
            raise SpecloopError(f"{target['version']} is already the champion.", rule="rollback")
        if target["status"] == "rejected" or not Path(target["checkpoint"]).is_file():
            raise SpecloopError(
                f"{target['version']} was rejected by the gate or its files are gone; it cannot be the champion.",
                rule="rollback",
            )
        return self.promote(target["version"], displaced_status="rolled_back")
