"""orders.maths without a database: risk score, route classification, age buckets, mean (no db fixture, no Django)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orders.maths import AGE_BUCKETS, RISK_WEIGHTS, age_buckets, classify_route, mean, risk_score


def test_the_module_imports_without_django():
    root = Path(__file__).resolve().parents[2]
    code = "import sys, orders.maths; sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=root, env={"PYTHONPATH": str(root)}).returncode == 0


@pytest.mark.parametrize(
    ("executed", "expected"),
    [
        ([(1, False), (2, False), (3, False)], {"conformant": True}),
        ([(1, False), (3, False)], {"skipped": [2]}),
        ([(2, False), (1, False), (3, False)], {"out_of_order": True}),
        ([(1, False), (2, False), (2, True), (3, False)], {"rework": [2]}),
        ([(1, False), (9, False), (2, False), (3, False)], {"extra": [9]}),
    ],
)
def test_classify_route(executed, expected):
    result = classify_route([1, 2, 3], executed)
    for key, value in expected.items():
        assert result[key] == value
    assert result["conformant"] == (expected == {"conformant": True})


def test_a_phase_executed_twice_without_a_rework_flag_is_rework():
    assert classify_route([1, 2], [(1, False), (2, False), (2, False)])["rework"] == [2]


def test_risk_score_follows_the_documented_weights():
    # The rule (orders.selectors.RISK_METHOD): 0.40*age + 0.25*bottleneck + 0.15*rework + 0.20*defects.
    score, parts = risk_score(age_days=15.0, late_days=30.0, bottleneck_rank=1, reworks=1, defect_share=0.3)
    assert parts == {"age": 0.5, "bottleneck": 1.0, "rework": 0.5, "defects": 0.3}
    assert score == pytest.approx(0.40 * 0.5 + 0.25 * 1.0 + 0.15 * 0.5 + 0.20 * 0.3)
    assert sum(RISK_WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(("rank", "expected"), [(1, 1.0), (2, 2 / 3), (3, 1 / 3), (4, 0.0), (None, 0.0)])
def test_only_the_top_three_bottlenecks_count(rank, expected):
    _, parts = risk_score(age_days=0.0, late_days=10.0, bottleneck_rank=rank, reworks=0, defect_share=0.0)
    assert parts["bottleneck"] == pytest.approx(expected)


def test_risk_components_saturate_at_one_and_need_a_threshold():
    score, parts = risk_score(age_days=90.0, late_days=30.0, bottleneck_rank=1, reworks=7, defect_share=1.0)
    assert parts == {"age": 1.0, "bottleneck": 1.0, "rework": 1.0, "defects": 1.0} and score == pytest.approx(1.0)
    _, parts = risk_score(age_days=90.0, late_days=None, bottleneck_rank=None, reworks=0, defect_share=0.0)
    assert parts["age"] == 0.0  # no lead-time history: age cannot be judged


def test_age_buckets_put_each_boundary_in_the_upper_band():
    buckets = age_buckets([0.0, 6.9, 7.0, 14.0, 29.99, 30.0, 60.0, 400.0])
    assert list(buckets) == [label for _, _, label in AGE_BUCKETS]
    assert buckets == {"0-7d": 2, "7-14d": 1, "14-30d": 2, "30-60d": 1, "60d+": 2}
    assert sum(age_buckets([]).values()) == 0


def test_mean():
    assert mean([]) is None
    assert mean([1.0, 2.0, 6.0]) == 3.0
