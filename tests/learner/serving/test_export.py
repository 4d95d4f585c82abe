"""TorchScript round trip: the served module gives the trainer's probabilities on raw states."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch

from learner.preprocessing.config import PreprocessingSettings
from learner.preprocessing.normalizer import fit_normalizer
from learner.serving import EXTRA_FILE, export_policy
from learner.trainers.config import TrainerSettings
from learner.trainers.training import train
from services.registry import load_policy
from tests.learner.trainers.synthetic import bandit_data, chain_mdp_data

FAST = {"hidden_sizes": [16], "batch_size": 64, "steps": 60, "num_threads": 1}


@pytest.fixture(scope="module", params=["bandit", "bcq", "cql-ensemble"])
def trained(request):
    algorithm, members = request.param, 1
    if request.param == "bandit":
        data = bandit_data(400)
        settings = PreprocessingSettings(overrides={"x1": "quantile"})
    else:
        data = chain_mdp_data(200)
        settings = PreprocessingSettings()
        if request.param == "cql-ensemble":
            algorithm, members = "cql", 3
    normalizer = fit_normalizer(data.states, data.feature_names, settings)
    trainer = TrainerSettings(algorithm=algorithm, ensemble_size=members, **FAST)
    result = train(data, trainer, normalizer, progress=False)
    blob = export_policy(result.policy, normalizer, data.feature_names, data.actions_space)
    return data, normalizer, result, blob


def _states_and_masks(data, n=50, seed=0):
    rng = np.random.default_rng(seed)
    states = data.states[:n].copy()
    states[rng.random(states.shape) < 0.2] = np.nan  # some features missing
    mask = rng.random((n, data.n_actions)) < 0.7
    mask[np.arange(n), rng.integers(data.n_actions, size=n)] = True
    return states, mask


def test_probs_dense_equals_the_trainers_probabilities(trained):
    data, _, result, blob = trained
    served = load_policy(blob)
    states, mask = _states_and_masks(data)
    with torch.no_grad():
        got = served.probs_dense(torch.from_numpy(states), torch.from_numpy(mask)).double().numpy()
    np.testing.assert_allclose(got, result.policy.probs(states, mask), rtol=1e-6, atol=1e-7)


def test_forward_on_raw_state_maps_equals_the_trainers_probabilities(trained):
    data, _, result, blob = trained
    served = load_policy(blob)
    states, mask = _states_and_masks(data)
    expected = result.policy.probs(states, mask)
    for row, flags, want in zip(states, mask, expected, strict=True):
        state = {
            name: float(v) for name, v in zip(data.feature_names, row, strict=True)
            if not np.isnan(v)
        }  # fmt: skip
        state["not_a_feature"] = 123.0  # ignored
        got = served(state, [bool(f) for f in flags])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_the_module_carries_feature_names_actions_and_its_description(trained):
    data, normalizer, result, blob = trained
    served = load_policy(blob)
    assert list(served.feature_names) == data.feature_names
    assert list(served.actions) == data.actions_space
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(io.BytesIO(blob), _extra_files=extra)
    described = json.loads(extra[EXTRA_FILE])
    assert described["normalization"] == json.loads(json.dumps(normalizer.to_manifest()))
    assert described["exploration"] == result.policy.exploration


def test_a_possible_list_of_the_wrong_length_is_refused(trained):
    data, _, _, blob = trained
    served = load_policy(blob)
    with pytest.raises(Exception, match="one flag per action"):
        served({}, [True] * (data.n_actions + 1))


def test_export_refuses_actions_that_differ_from_training(trained):
    data, normalizer, result, _ = trained
    with pytest.raises(ValueError, match="actions"):
        export_policy(result.policy, normalizer, data.feature_names, ["a"] * data.n_actions)


def test_bytes_that_are_not_torchscript_are_refused():
    with pytest.raises(ValueError, match=r"policy\.pt"):
        load_policy(b"definitely not a zip archive")
