"""Feature types are detected from data, parameters round-trip through the manifest, and the
TorchScript module computes exactly what training used."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from learner.preprocessing.config import PreprocessingSettings
from learner.preprocessing.normalizer import Normalizer, fit_normalizer

NAMES = ["flag", "ctr", "colour", "price", "wait", "temp"]


@pytest.fixture(scope="module")
def states() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 4000
    return np.column_stack(
        [
            rng.integers(0, 2, n),  # binary
            rng.beta(2, 5, n),  # probability
            rng.choice([3.0, 7.0, 11.0], n),  # enum
            rng.normal(50, 10, n),  # continuous, symmetric
            rng.lognormal(0.0, 1.0, n),  # skewed, positive: Box-Cox
            100.0 - rng.lognormal(0.0, 1.5, n),  # skewed to the left
        ]
    ).astype(np.float32)


def _types(normalizer: Normalizer) -> dict[str, str]:
    return {s.name: s.type for s in normalizer.specs}


def test_types_are_identified_from_the_values(states):
    types = _types(fit_normalizer(states, NAMES))
    assert types["flag"] == "binary"
    assert types["ctr"] == "probability"
    assert types["colour"] == "enum"
    assert types["price"] == "continuous"
    assert types["wait"] == "boxcox"
    assert types["temp"] in ("boxcox", "quantile")


def test_quantile_can_be_chosen_for_skewed_features(states):
    settings = PreprocessingSettings(skewed_transform="quantile")
    assert _types(fit_normalizer(states, NAMES, settings))["wait"] == "quantile"


def test_overrides_win_over_detection(states):
    settings = PreprocessingSettings(overrides={"colour": "continuous", "flag": "identity"})
    types = _types(fit_normalizer(states, NAMES, settings))
    assert types["colour"] == "continuous" and types["flag"] == "identity"


def test_an_override_for_an_unknown_feature_is_refused(states):
    with pytest.raises(ValueError, match="nope"):
        fit_normalizer(states, NAMES, PreprocessingSettings(overrides={"nope": "binary"}))


def test_continuous_features_are_standardized_and_boxcox_removes_skew(states):
    norm = fit_normalizer(states, NAMES)
    out = norm.transform(states)
    names = norm.output_names()
    price = out[:, names.index("price")]
    assert abs(price.mean()) < 0.05 and abs(price.std() - 1) < 0.05
    wait = out[:, names.index("wait")]
    skew = float(np.mean(((wait - wait.mean()) / wait.std()) ** 3))
    assert abs(skew) < 0.5


def test_enum_becomes_one_hot_columns_after_the_scalars(states):
    norm = fit_normalizer(states, NAMES)
    assert norm.output_names()[-3:] == ["colour=3", "colour=7", "colour=11"]
    out = norm.transform(states)
    np.testing.assert_array_equal(out[:, -3:].sum(axis=1), 1.0)
    assert norm.out_features == 5 + 3


def test_outliers_are_clamped(states):
    norm = fit_normalizer(states, NAMES, PreprocessingSettings(clamp=3.0))
    extreme = states[:2].copy()
    extreme[:, 3] = [1e9, -1e9]
    out = norm.transform(extreme)
    assert out[:, norm.output_names().index("price")].tolist() == [3.0, -3.0]


def test_missing_features_take_the_default(states):
    settings = PreprocessingSettings(defaults={"price": 60.0})
    norm = fit_normalizer(states, NAMES, settings)
    row = states[:1].copy()
    row[0, 3] = np.nan
    filled = states[:1].copy()
    filled[0, 3] = 60.0
    np.testing.assert_array_equal(norm.transform(row), norm.transform(filled))


def test_manifest_round_trip_gives_identical_outputs(states):
    norm = fit_normalizer(states, NAMES, PreprocessingSettings(skewed_transform="quantile"))
    manifest = json.loads(json.dumps(norm.to_manifest()))
    again = Normalizer.from_manifest(manifest)
    assert again.specs == norm.specs
    np.testing.assert_array_equal(again.transform(states), norm.transform(states))


def test_a_bad_manifest_entry_names_the_field_and_the_rule(states):
    manifest = fit_normalizer(states, NAMES).to_manifest()
    manifest["features"][3]["std"] = -1.0
    with pytest.raises(ValueError, match=r"features\[3\]\.std=-1.0: must be > 0"):
        Normalizer.from_manifest(manifest)


def test_the_torchscript_module_matches_transform(states):
    norm = fit_normalizer(states, NAMES, PreprocessingSettings(skewed_transform="quantile"))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(norm.as_module()), buffer)
    buffer.seek(0)
    module = torch.jit.load(buffer)
    with torch.no_grad():
        served = module(torch.from_numpy(states)).numpy()
    np.testing.assert_array_equal(served, norm.transform(states))
