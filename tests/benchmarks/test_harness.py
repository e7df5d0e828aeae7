"""benchmarks/harness.py: how the benchmark times its contenders (each one's best run, taking turns) and
how a row of its table reads (met or not, a ratio or a dash). The table is only as good as these."""

from __future__ import annotations

import math
import time

import pytest

from benchmarks.harness import Row, best_of, taking_turns


def test_best_of_keeps_each_contenders_fastest_run_and_takes_turns():
    calls = []
    delays = iter([0.05, 0.01, 0.02, 0.03])  # a: 0.05 then 0.02; b: 0.01 then 0.03

    def contender(name):
        def run():
            calls.append(name)
            time.sleep(next(delays))

        return run

    seconds = best_of(2, {"a": contender("a"), "b": contender("b")})
    assert calls == ["a", "b", "a", "b"]
    assert seconds["a"] == pytest.approx(0.02, abs=0.015)
    assert seconds["b"] == pytest.approx(0.01, abs=0.015)


def test_a_row_meets_its_target_at_or_above_it():
    assert Row("x", "", "", 1.7, 1.7).met and Row("x", "", "", 1.7, 1.7).verdict == "met"
    assert Row("x", "", "", 0.74, 0.75).verdict == "NOT MET"
    assert Row("x", "", "", 0.5, None).verdict == "-"  # measured for information only


def test_a_row_without_a_ratio_shows_a_dash():
    assert Row("x", "failed: boom", "", math.nan, None).ratio_text == "-"
    assert Row("x", "", "", 1.234, None).ratio_text == "1.23x"


def test_taking_turns_keeps_each_backends_best_per_measurement_over_rounds():
    calls = []
    reports = {
        "tensorflow": iter([{"extract_features": 2.0, "fine_tune": 5.0}, {"extract_features": 1.5, "fine_tune": 6.0}]),
        "jax": iter([{"extract_features": 4.0}, {"extract_features": 3.0, "fine_tune": 9.0}]),
    }

    def backend(name):
        def run():
            calls.append(name)
            return next(reports[name])

        return run

    best = taking_turns(2, {name: backend(name) for name in reports})
    assert calls == ["tensorflow", "jax", "tensorflow", "jax"]  # one worker per backend per round, in turn
    assert best == {
        "tensorflow": {"extract_features": 1.5, "fine_tune": 5.0},
        "jax": {"extract_features": 3.0, "fine_tune": 9.0},
    }
