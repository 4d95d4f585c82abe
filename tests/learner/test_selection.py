"""Selection variants and the rule that chooses among them (learner.selection)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from learner.selection import SelectionRow, SelectionSettings, adjusted_alpha, choose, variants
from learner.settings import LearnerSettings
from learner.trainers.config import TrainerSettings

NAN = math.nan


def _row(name: str, low: float, publish: bool, problem: str | None = None) -> SelectionRow:
    return SelectionRow(name, "fqe", low + 1.0, low, low + 2.0, publish, problem=problem)


def test_by_default_a_run_has_one_variant_the_trainers_own_settings():
    trainer = TrainerSettings(steps=123)
    (only,) = variants(trainer, SelectionSettings())
    assert only.settings == trainer and only.name == "defaults"


def test_variants_are_every_trainer_configuration_with_every_temperature():
    selection = SelectionSettings(trainers=[{}, {"algorithm": "bcq"}], temperatures=[0.05, 0.5])
    out = variants(TrainerSettings(), selection)
    assert [(v.trainer_index, v.settings.algorithm, v.settings.exploration.temperature)
            for v in out] == [(0, "auto", 0.05), (0, "auto", 0.5),
                              (1, "bcq", 0.05), (1, "bcq", 0.5)]  # fmt: skip
    assert out[3].name == "algorithm=bcq, temperature 0.5"
    assert selection.count == 4


def test_a_nested_override_keeps_the_trainers_other_exploration_settings():
    trainer = TrainerSettings(exploration={"epsilon": 0.1})
    (v,) = variants(trainer, SelectionSettings(trainers=[{"exploration": {"temperature": 2}}]))
    assert v.settings.exploration.temperature == 2 and v.settings.exploration.epsilon == 0.1


def test_an_unknown_trainer_field_is_refused_naming_the_variant_and_field():
    with pytest.raises(ValidationError, match=r"trainers\[1\]\.cql_alph"):
        LearnerSettings(selection={"trainers": [{}, {"cql_alph": 1.0}]})


def test_a_temperature_must_be_positive():
    with pytest.raises(ValidationError, match=r"temperatures\[1\]: must be > 0"):
        SelectionSettings(temperatures=[0.1, 0.0])


def test_each_of_k_intervals_is_at_level_one_minus_alpha_over_k():
    assert adjusted_alpha(0.05, 4) == pytest.approx(0.0125)
    assert adjusted_alpha(0.05, 1) == 0.05


def test_a_variant_the_gate_would_publish_beats_a_higher_lower_bound_it_would_reject():
    assert choose([_row("a", 5.0, False), _row("b", 1.0, True)]) == 1


def test_among_publishable_variants_the_highest_lower_bound_is_chosen():
    assert choose([_row("a", 1.0, True), _row("b", 3.0, True), _row("c", 2.0, True)]) == 1


def test_ties_go_to_the_earlier_variant():
    assert choose([_row("a", 2.0, True), _row("b", 2.0, True)]) == 0


def test_a_variant_without_numbers_ranks_below_one_with_them():
    nan_row = SelectionRow("a", "fqe", NAN, NAN, NAN, False)
    assert choose([nan_row, _row("b", -100.0, False)]) == 1


def test_a_diverged_variant_is_chosen_only_when_every_variant_diverged():
    diverged = SelectionRow("a", "n/a", NAN, NAN, NAN, False, problem="diverged")
    assert choose([diverged, _row("b", -1.0, False)]) == 1
    assert choose([diverged, diverged]) == 0
