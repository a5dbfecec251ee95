"""eval_table's aggregation: deltas against the start of the same seed, summaries over seeds."""

import json

import pandas as pd
import pytest

from mosic.config import run_name, split_run_name
from mosic.evaluate.run import aggregate


def write_result(path, model, miou, protocol="hummingbird"):
    path.write_text(json.dumps({"protocol": protocol, "dataset": "synthetic/val", "model": model,
                                "metrics": {"miou": miou}}))  # fmt: skip
    return path


def test_run_names_round_trip():
    assert split_run_name(run_name("shuffled", 12)) == ("shuffled", 12)
    assert split_run_name("start") == ("start", None)


def test_deltas_are_against_the_same_seed_and_summarised_over_seeds(tmp_path):
    scores = {"start_s0": 0.20, "start_s1": 0.30, "mosic_s0": 0.25, "mosic_s1": 0.32, "static_s0": 0.18}
    paths = [write_result(tmp_path / f"{m}.json", m, v) for m, v in scores.items()]
    table = aggregate(paths, tmp_path / "out")
    delta = dict(zip(table["model"], table["delta"], strict=True))
    assert delta["mosic_s0"] == pytest.approx(0.05) and delta["mosic_s1"] == pytest.approx(0.02)
    assert delta["static_s0"] == pytest.approx(-0.02) and delta["start_s1"] == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("variant")
    assert summary.loc["mosic", "seeds"] == 2 and summary.loc["mosic", "delta_mean"] == pytest.approx(0.035)
    assert summary.loc["static", "seeds"] == 1
    assert (tmp_path / "out" / "deltas.png").stat().st_size > 1000


def test_models_without_a_seed_compare_with_the_plain_baseline(tmp_path):
    paths = [write_result(tmp_path / "a.json", "start", 0.4), write_result(tmp_path / "b.json", "main", 0.5)]
    table = aggregate(paths, tmp_path / "out")
    assert dict(zip(table["model"], table["delta"], strict=True)) == pytest.approx({"start": 0.0, "main": 0.1})
