"""MLflow tracking behind a small interface, so training and evaluation never import MLflow.

`open_tracker(cfg, run_dir)` returns a Tracker bound to one MLflow run. The run id is kept in
`run_dir/mlflow_run.json`, so a resumed run re-attaches to the same MLflow run instead of leaving a second one
RUNNING. Every metric is also appended to `run_dir/metrics.jsonl`: when the server cannot be reached the
tracker warns once, stops talking to MLflow and the run folder still holds the full record.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, flatten
from ..io import write_json
from ..paths import workspace_root
from ..tracker import METRICS_FILE, LocalTracker, append_metrics

RUN_FILE = "mlflow_run.json"
_PARAM_MAX = 6000  # MLflow 3's limit on a param value's length

# A tracking server that is down must cost seconds, not MLflow's default minutes of retries (7 retries,
# exponential backoff, 120 s timeout). A busy but live server still gets 30 s per request. Users may override.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def quick_http_failures() -> None:
    """Set HTTP_DEFAULTS where the user has not: called when a tracker opens, not when this module is imported
    (an import must not change the environment of a program that only reads a helper from here)."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


# Set with MLFLOW_TRACKING_URI while a server this workspace started serves its SQLite store to a Slurm array
# (server.served_for_workers): the store behind that URL, whose port changes from one driver to the next.
SERVED_STORE_ENV = "VIRTUE_MLFLOW_SERVED_STORE"


def store_of(uri: str) -> str:
    """The store a tracking URI writes to: the SQLite store behind the workspace's own served URL, else the URI.
    Run folders record this, so a run resumed under a later driver's server (another port) finds its run."""
    served = os.environ.get(SERVED_STORE_ENV)
    return served if served and uri == os.environ.get("MLFLOW_TRACKING_URI") else uri


def tracking_uri(cfg: ExperimentConfig | None = None, root: Path | None = None) -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else a SQLite database in the workspace (never ./mlruns)."""
    if cfg is not None and cfg.tracking.uri:
        return cfg.tracking.uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or workspace_root()) / 'mlflow.db'}"


def artifact_root(root: Path | None = None) -> Path:
    return (root or workspace_root()) / "mlartifacts"


def _workspace_of(location: str) -> Path | None:
    """The workspace a stored artifact location belongs to, when it has the shape ensure_experiment gives it
    (<root>/mlartifacts/...); else None (a location the user chose, or MLflow's unused Default experiment)."""
    if not location.startswith(("file:///", "/")):
        return None
    parts = Path(location.removeprefix("file://")).parts
    return Path(*parts[: parts.index("mlartifacts")]) if "mlartifacts" in parts else None


def relocate_store(root: Path) -> None:
    """A workspace copied elsewhere (cp -r, rsync, another checkout with its mlflow.db) keeps absolute
    artifact locations in its database, so its runs would log into the original's mlartifacts/. Point every
    location of the workspace's own shape at this workspace instead (SQLite, one transaction), and say so."""
    import sqlite3

    db = root / "mlflow.db"
    if not db.is_file():
        return
    with contextlib.closing(sqlite3.connect(db)) as con:
        try:
            rows = con.execute("SELECT artifact_location FROM experiments").fetchall()
        except sqlite3.Error:
            return  # not initialised yet (MLflow creates the tables on first use)
        old = {w for (loc,) in rows if loc and (w := _workspace_of(loc)) is not None and w != root}
        if not old:
            return
        with con:
            for prev in old:
                for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
                    for prefix in (f"file://{prev}/", f"{prev}/"):
                        new = f"file://{root}/" if prefix.startswith("file://") else f"{root}/"
                        con.execute(
                            f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {column} LIKE ? || '%'",
                            (new, len(prefix) + 1, prefix),
                        )
    moved = ", ".join(str(p) for p in sorted(old))
    warnings.warn(f"{db}: artifact locations pointed into {moved} (copied from there); now into {root}", stacklevel=3)


def git_sha(root: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root or workspace_root(), capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _http_reachable(uri: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ensure_experiment(client, name: str, uri: str, root: Path | None = None) -> str:
    """The experiment's id, creating it once. Two processes may race here: the loser reads the winner's."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:") or uri.startswith("postgresql") or uri.startswith("mysql"):
        # Local database: artifacts next to it in the workspace (a server picks its own location).
        location = artifact_root(root).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


_WARNED_URIS: set[str] = set()


class MlflowTracker:
    """One MLflow run. Any MLflow failure switches it to offline mode (one warning, metrics kept locally)."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_dir: Path,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        root: Path | None = None,
        attach_stored: bool = True,
    ):
        self.uri = uri
        self.run_dir = run_dir
        self.run_id: str | None = None
        self.offline = False
        self._metrics = run_dir / METRICS_FILE
        self._client = None
        self._known_params: set[str] = set()
        quick_http_failures()
        if uri.startswith(("http://", "https://")) and not _http_reachable(uri):
            self._go_offline(f"tracking server {uri} is unreachable")
            return
        try:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=uri)
            exp_id = ensure_experiment(self._client, experiment, uri, root)
            self.run_id = self._attach(run_id or (self._stored_run_id() if attach_stored else None), exp_id)
            if self.run_id is None:
                all_tags = {"mlflow.runName": run_name} if run_name else {}
                if parent_run_id:
                    all_tags["mlflow.parentRunId"] = parent_run_id
                run = self._client.create_run(exp_id, run_name=run_name, tags=all_tags)
                self.run_id = run.info.run_id
            if attach_stored:  # a folder shared by several runs (a sweep cell) keeps the record of its training
                record = {"run_id": self.run_id, "tracking_uri": store_of(uri), "experiment_id": exp_id}
                write_json(run_dir / RUN_FILE, record)
        except Exception as e:  # noqa: BLE001 - tracking must never stop a run
            self._go_offline(f"MLflow at {uri} failed ({type(e).__name__}: {e})")
            return
        self.set_tags({k: v for k, v in (tags or {}).items() if v is not None})

    def _stored_run_id(self) -> str | None:
        try:
            info = json.loads((self.run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info.get("run_id") if info.get("tracking_uri") == store_of(self.uri) else None

    def _attach(self, run_id: str | None, exp_id: str) -> str | None:
        """Re-open an existing run (resume, requeue); None when it is gone or belongs elsewhere."""
        if not run_id:
            return None
        try:
            run = self._client.get_run(run_id)
        except Exception:  # noqa: BLE001 - deleted or from another database: start a new run
            return None
        if run.info.experiment_id != exp_id or run.info.lifecycle_stage != "active":
            return None
        self._client.update_run(run_id, status="RUNNING")
        self._known_params = set(run.data.params)
        return run_id

    def _go_offline(self, why: str) -> None:
        # Once per tracking URI and process: a sweep opens a tracker per trial, and one dead server is one fact.
        if not self.offline and self.uri not in _WARNED_URIS:
            _WARNED_URIS.add(self.uri)
            warnings.warn(
                f"{why}; continuing without MLflow, metrics kept in each run folder ({METRICS_FILE})",
                RuntimeWarning,
                stacklevel=3,
            )
        self.offline = True

    def _call(self, fn, *args, **kwargs) -> None:
        if self.offline or self.run_id is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            self._go_offline(f"MLflow at {self.uri} failed ({type(e).__name__}: {e})")

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._client is None:
            return
        from mlflow.entities import Param

        # MLflow params are write-once: a re-attached run keeps the values it started with.
        items = [Param(k, str(v)[:_PARAM_MAX]) for k, v in params.items() if k not in self._known_params]
        for i in range(0, len(items), 100):  # MLflow's per-batch limit
            self._call(self._client.log_batch, self.run_id, params=items[i : i + 100])
        self._known_params.update(p.key for p in items)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        append_metrics(self._metrics, metrics, step)
        if self._client is None:
            return
        from mlflow.entities import Metric

        from_ms = _now_ms()
        batch = [Metric(metric_name(k), float(v), from_ms, step or 0) for k, v in metrics.items()]
        self._call(self._client.log_batch, self.run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike) -> None:
        if self._client is not None:
            self._call(self._client.log_artifact, self.run_id, str(path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._client is None or not tags:
            return
        from mlflow.entities import RunTag

        self._call(self._client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def close(self, status: str = "FINISHED") -> None:
        if self._client is not None:
            self._call(self._client.set_terminated, self.run_id, status=status)


def metric_name(key: str) -> str:
    """MLflow allows only [A-Za-z0-9_-. :/] in names: 'scar.overall.hit@1' -> 'scar.overall.hit_at_1'."""
    return re.sub(r"[^\w\-. :/]", "_", key.replace("@", "_at_"))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def open_tracker(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    log_config: bool = True,
    attach_stored: bool = True,
) -> MlflowTracker | LocalTracker:
    """The tracker of one run: params = the flattened resolved config, tags = git SHA + `tags` (e.g. the data
    hash). Re-attaches to `run_id`, else to the run recorded in run_dir, else starts a new run and records it
    there. With attach_stored False (a sweep cell's folder, shared by the studies that need it, each with its own
    run) it neither reads nor overwrites the folder's record, which stays the run that trained there."""
    run_dir = Path(run_dir)
    if not cfg.tracking.enabled:
        return LocalTracker(run_dir)
    root = workspace_root()
    all_tags = {"git_sha": git_sha(root), "experiment": cfg.name, **(tags or {})}
    uri = tracking_uri(cfg, root)
    if uri == tracking_uri(None, root) and not os.environ.get("MLFLOW_TRACKING_URI"):  # the workspace's own store
        relocate_store(root)
    tracker = MlflowTracker(
        uri,
        cfg.tracking.experiment,
        run_dir,
        run_name=run_name or cfg.name,
        parent_run_id=parent_run_id,
        run_id=run_id,
        tags=all_tags,
        root=root,
        attach_stored=attach_stored,
    )
    if log_config:
        tracker.log_params(flatten(cfg))
    return tracker


@contextlib.contextmanager
def system_metrics(tracker: Any, interval_s: float = 10.0) -> Iterator[None]:
    """MLflow's system metrics (CPU, memory, disk, network; GPUs where pynvml is installed) on the tracker's run
    while the block runs: `system/...` metrics sampled every interval_s by a thread, continuing the run's own
    series when a requeued job re-attaches. Nothing without psutil, without MLflow, or offline."""
    import importlib.util

    run_id, uri = getattr(tracker, "run_id", None), getattr(tracker, "uri", None)
    if run_id is None or getattr(tracker, "offline", True) or importlib.util.find_spec("psutil") is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a monitor that cannot log must not fail the run it watched
            monitor.finish()
