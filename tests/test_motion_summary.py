"""mosic.motion_study.summarize: each run's change against its seed's start, the verdict, the labelled reference."""

import pytest

from mosic.motion_study import summarize


def score(same, cross, objects=10.0, linking=0.0):
    return {"same": same, "cross": cross, "objects": objects, "linking": linking}


SCORES = {
    "start_s0": score(40.0, 14.0),
    "start_s1": score(40.0, 14.0),
    "ground_truth/mosic_s0": score(40.5, 17.5, 12.0, 5.0),
    "ground_truth/mosic_s1": score(39.5, 17.0, 11.0, 4.0),
    "ground_truth/static_s0": score(33.0, 14.0),
    "ground_truth/static_s1": score(35.0, 13.5),
}


def test_deltas_per_seed_and_the_verdict():
    rows, verdict = summarize(SCORES, ["ground_truth"], ["mosic", "static"], [0, 1])
    mosic, static = rows
    assert mosic["d_cross_seeds"] == [3.5, 3.0] and mosic["d_cross"] == pytest.approx(3.25)
    assert static["d_same_seeds"] == [-7.0, -5.0] and mosic["d_linking"] == pytest.approx(4.5)
    assert verdict["ground_truth"]["cross_margin_vs_controls"] == {"static": [3.5, 3.5]}
    assert verdict["ground_truth"]["target_met"]
    worse = {**SCORES, "ground_truth/mosic_s1": score(39.5, 16.0)}  # +2 over its start in seed 1
    assert not summarize(worse, ["ground_truth"], ["mosic", "static"], [0, 1])[1]["ground_truth"]["target_met"]


def test_the_labelled_reference_is_a_row_against_every_seed_start_but_not_a_control():
    scores = {**SCORES, "labelled": score(41.0, 14.5, 13.0, 16.0), "start_s1": score(42.0, 15.0)}
    rows, verdict = summarize(scores, ["ground_truth"], ["mosic", "static"], [0, 1])
    assert [(r["tracker"], r["variant"]) for r in rows][-1] == ("labels", "labelled")
    assert rows[-1]["d_cross_seeds"] == [0.5, -0.5] and rows[-1]["d_linking_seeds"] == [16.0, 16.0]
    assert set(verdict) == {"ground_truth"} and set(verdict["ground_truth"]["cross_margin_vs_controls"]) == {"static"}
    assert len(summarize(SCORES, ["ground_truth"], ["mosic"], [0, 1])[0]) == 1  # no reference scored: no row


def test_every_cross_view_protocol_must_clear_the_margin_and_clustering_must_hold():
    scores = {k: {**v, "cluster": 20.0, "cross_cluster": 18.0} for k, v in SCORES.items()}
    rows, verdict = summarize(scores, ["ground_truth"], ["mosic", "static"], [0, 1])
    assert rows[0]["d_cross_cluster_seeds"] == [0.0, 0.0]
    assert not verdict["ground_truth"]["target_met"]  # Hummingbird cross-view alone is not enough
    scores["ground_truth/mosic_s0"]["cross_cluster"], scores["ground_truth/mosic_s1"]["cross_cluster"] = 22.0, 21.5
    verdict = summarize(scores, ["ground_truth"], ["mosic", "static"], [0, 1])[1]["ground_truth"]
    assert verdict["margins_vs_controls"]["cross_cluster"] == {"static": [4.0, 3.5]} and verdict["target_met"]
    scores["ground_truth/mosic_s1"]["cluster"] = 18.5  # loses 1.5 points of standard clustering in one seed
    assert not summarize(scores, ["ground_truth"], ["mosic", "static"], [0, 1])[1]["ground_truth"]["target_met"]
