"""The algorithm catalog: every name the settings accept is a class behind the one interface."""

from __future__ import annotations

from typing import get_args

import pytest

from learner.trainers.algorithms import ALGORITHMS, Algorithm, algorithm_by_name
from learner.trainers.config import TrainerSettings


def test_every_algorithm_the_settings_accept_is_in_the_catalog_and_no_other():
    accepted = set(get_args(TrainerSettings.model_fields["algorithm"].annotation)) - {"auto"}
    assert set(ALGORITHMS) == accepted


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_an_algorithm_is_found_by_its_name_and_implements_the_interface(name):
    cls = algorithm_by_name(name)
    assert issubclass(cls, Algorithm) and cls.name == name
    assert isinstance(cls(TrainerSettings()), Algorithm)  # every abstract method implemented


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown algorithm 'ppo'; known: .*'cql'"):
        algorithm_by_name("ppo")
