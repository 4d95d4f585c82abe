"""The timeline's location is one setting, ``tables.timeline_uri``, that every part reads."""

from __future__ import annotations

import pytest

from services.cli.settings import load_settings
from services.sessionizer.settings import SessionizerSettings


def test_the_default_timeline_is_local(monkeypatch):
    monkeypatch.delenv("POLICYLOOP_TABLES__TIMELINE_URI", raising=False)
    assert load_settings().tables.timeline_uri == ".policyloop/tables/timeline"


def test_one_variable_sets_the_timeline_for_every_part(monkeypatch):
    monkeypatch.setenv("POLICYLOOP_TABLES__TIMELINE_URI", "s3://bucket/tables/timeline")
    assert load_settings().tables.timeline_uri == "s3://bucket/tables/timeline"


def test_a_flag_beats_the_environment(monkeypatch):
    monkeypatch.setenv("POLICYLOOP_TABLES__TIMELINE_URI", "s3://bucket/tables/timeline")
    settings = load_settings(overrides={"tables": {"timeline_uri": "/data/timeline"}})
    assert settings.tables.timeline_uri == "/data/timeline"


@pytest.mark.parametrize(
    ("variable", "old_key"),
    [
        ("POLICYLOOP_SESSIONIZER__TABLE_URI", "sessionizer.table_uri"),
        ("POLICYLOOP_LEARNER__TIMELINE_URI", "learner.timeline_uri"),
    ],
)
def test_the_former_per_part_locations_are_refused_with_the_new_name(
    monkeypatch, variable, old_key
):
    monkeypatch.setenv(variable, "/somewhere/else")
    with pytest.raises(ValueError, match=f"{old_key} is now tables.timeline_uri"):
        load_settings()


def test_the_state_checkpoints_default_to_beside_the_timeline():
    assert SessionizerSettings().resolved_state_uri("/t/timeline/") == "/t/timeline.state"
    assert SessionizerSettings(state_uri="/s").resolved_state_uri("/t/timeline") == "/s"
