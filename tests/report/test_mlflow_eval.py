"""`virtue eval` logs each evaluation to MLflow: every number of metrics.json as a metric, the config as params,
metrics, config and predictions as artifacts, one MLflow run per evaluation. A real SQLite tracking store."""

from __future__ import annotations

import json

import pytest
from faults.conftest import PRESETS  # tests/ is on sys.path (rootdir import mode)

from virtue.report.mlflow_eval import numeric_leaves

from .test_export import micro_eval_inputs  # noqa: F401 - the fixture


def test_numeric_leaves_flatten_numbers_only():
    tree = {"a": {"b": 0.5, "n": 3, "flag": True, "nan": float("nan")}, "name": "x", "c": 1.0}
    assert dict(numeric_leaves(tree)) == {"a.b": 0.5, "a.n": 3.0, "c": 1.0}


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_eval_logs_its_metrics_and_predictions_to_mlflow(micro_eval_inputs, tmp_path, cli):  # noqa: F811
    from mlflow.tracking import MlflowClient

    data, weights = micro_eval_inputs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("eval", "tiny", *PRESETS, f"data.scar_dir={data / 'scar'}", f"data.mmeb_dir={data / 'mmeb'}",
            f"tracking.uri={uri}", f"--checkpoint={weights}", f"--out={tmp_path / 'eval'}")  # fmt: skip
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("virtue")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "eval-tiny" and run.info.status == "FINISHED"
    assert run.data.tags["kind"] == "eval" and run.data.tags["checkpoint"] == str(weights)
    assert run.data.metrics["scar.overall.hit_at_1"] == m["scar"]["overall"]["hit@1"]
    assert run.data.metrics["mmeb.overall"] == m["mmeb"]["overall"]
    task = next(iter(m["mmeb"]["tasks"]))
    assert run.data.metrics[f"mmeb.tasks.{task}.hit_at_1"] == m["mmeb"]["tasks"][task]["hit@1"]
    assert len(run.data.metrics) == len(dict(numeric_leaves(m)))
    assert run.data.params["model.variant"] == "virtue"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.yaml", "predictions.parquet"} <= artifacts

    assert cli(*args).returncode == 0  # a second evaluation is a second MLflow run
    assert len(client.search_runs([exp.experiment_id])) == 2
