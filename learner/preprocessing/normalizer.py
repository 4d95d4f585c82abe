"""Feature identification and normalization, ReAgent-style, with one implementation for both
training and serving.

Networks learn badly from raw features of wildly different scales, and a served policy must see
exactly the preprocessing it was trained with. So the fitted parameters live in three forms that
cannot disagree: :class:`FeatureSpec` records (what goes into ``manifest.json``), and
:class:`NormalizerModule`, a TorchScript-able module built from them that is used by
:meth:`Normalizer.transform` during training *and* embedded in the served ``policy.pt``.

Output columns: every non-enum feature in input order, then the one-hot columns of the enum
features (see :meth:`Normalizer.output_names`); ``out_features`` is their count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from learner.preprocessing.boxcox import boxcox, boxcox_lambda, skewness
from learner.preprocessing.config import FEATURE_TYPES, PreprocessingSettings

__all__ = ["FeatureSpec", "Normalizer", "NormalizerModule", "fit_normalizer", "identify_type"]

MANIFEST_FORMAT = "policyloop.normalization/1"
_KIND = {"identity": 0, "binary": 1, "probability": 2, "continuous": 3, "boxcox": 4,
         "quantile": 5, "enum": 6}  # fmt: skip


@dataclass(frozen=True)
class FeatureSpec:
    """One feature's type and fitted parameters (raw value → normalized value)."""

    name: str
    type: str
    default: float
    mean: float = 0.0
    std: float = 1.0
    lam: float = 1.0
    shift: float = 0.0
    values: tuple[float, ...] = ()
    boundaries: tuple[float, ...] = ()
    targets: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.type in ("continuous", "boxcox"):
            out.update(mean=self.mean, std=self.std)
        if self.type == "boxcox":
            out.update({"lambda": self.lam, "shift": self.shift})
        if self.type == "enum":
            out["values"] = list(self.values)
        if self.type == "quantile":
            out.update(boundaries=list(self.boundaries), targets=list(self.targets))
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> FeatureSpec:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be an object")

        def number(key: str, default: float | None = None) -> float:
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}.{key}={value!r}: must be a number")
            if not math.isfinite(value):
                raise ValueError(f"{where}.{key}={value!r}: must be finite")
            return float(value)

        def numbers(key: str) -> tuple[float, ...]:
            value = raw.get(key)
            if not isinstance(value, list) or not value:
                raise ValueError(f"{where}.{key}={value!r}: must be a non-empty list of numbers")
            for i, item in enumerate(value):
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise ValueError(f"{where}.{key}[{i}]={item!r}: must be a number")
                if not math.isfinite(item):
                    raise ValueError(f"{where}.{key}[{i}]={item!r}: must be finite")
            return tuple(float(v) for v in value)

        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name={name!r}: must be a non-empty string")
        kind = raw.get("type")
        if kind not in FEATURE_TYPES:
            raise ValueError(f"{where}.type={kind!r}: must be one of {', '.join(FEATURE_TYPES)}")
        spec: dict[str, Any] = {"name": name, "type": kind, "default": number("default")}
        if kind in ("continuous", "boxcox"):
            spec.update(mean=number("mean"), std=number("std"))
            if spec["std"] <= 0:
                raise ValueError(f"{where}.std={spec['std']}: must be > 0")
        if kind == "boxcox":
            spec.update(lam=number("lambda"), shift=number("shift"))
        if kind == "enum":
            spec["values"] = numbers("values")
        if kind == "quantile":
            spec["boundaries"] = numbers("boundaries")
            spec["targets"] = numbers("targets")
            b, t = spec["boundaries"], spec["targets"]
            if len(b) != len(t):
                raise ValueError(f"{where}.targets: must have as many entries as boundaries")
            if any(y <= x for x, y in pairwise(b)) or any(y <= x for x, y in pairwise(t)):
                raise ValueError(f"{where}.boundaries/targets: must be strictly increasing")
        return cls(**spec)


class NormalizerModule(nn.Module):
    """Raw ``(n, F)`` float32 states (NaN = missing) → normalized ``(n, out_features)``.

    TorchScript-able; every parameter is a buffer, so it moves with the module and is saved
    inside ``policy.pt``.
    """

    if TYPE_CHECKING:
        # The buffers registered in ``__init__``, typed for mypy (``nn.Module.__getattr__`` says
        # ``Tensor | Module``). Only for the type checker: TorchScript would read class-body
        # annotations, and cannot resolve them as strings (``from __future__ import annotations``).
        defaults: torch.Tensor
        kinds: torch.Tensor
        mean: torch.Tensor
        std: torch.Tensor
        lam: torch.Tensor
        shift: torch.Tensor
        q_bounds: torch.Tensor
        q_targets: torch.Tensor
        scalar_idx: torch.Tensor
        enum_idx: torch.Tensor
        enum_vals: torch.Tensor

    def __init__(self, specs: list[FeatureSpec], clamp: float) -> None:
        super().__init__()
        f = len(specs)
        self.clamp = float(clamp)
        self.n_features = f

        def buf(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32).reshape(-1)

        self.register_buffer("defaults", buf([s.default for s in specs]))
        self.register_buffer(
            "kinds", torch.tensor([_KIND[s.type] for s in specs], dtype=torch.long)
        )
        self.register_buffer("mean", buf([s.mean for s in specs]))
        self.register_buffer("std", buf([s.std for s in specs]))
        self.register_buffer("lam", buf([s.lam for s in specs]))
        self.register_buffer("shift", buf([s.shift for s in specs]))
        k = max([len(s.boundaries) for s in specs] + [2])
        bounds = torch.zeros(f, k)
        targets = torch.zeros(f, k)
        for i, s in enumerate(specs):
            if s.type == "quantile":
                m = len(s.boundaries)
                bounds[i, :m] = torch.tensor(s.boundaries)
                targets[i, :m] = torch.tensor(s.targets)
                # padding: beyond the last boundary, stay at its target
                bounds[i, m:] = s.boundaries[-1] + 1.0 + torch.arange(k - m, dtype=torch.float32)
                targets[i, m:] = s.targets[-1]
            else:
                bounds[i] = torch.arange(k, dtype=torch.float32)
        self.register_buffer("q_bounds", bounds.contiguous())
        self.register_buffer("q_targets", targets.contiguous())
        scalar = [i for i, s in enumerate(specs) if s.type != "enum"]
        enum_idx = [i for i, s in enumerate(specs) if s.type == "enum" for _ in s.values]
        enum_vals = [v for s in specs if s.type == "enum" for v in s.values]
        self.register_buffer("scalar_idx", torch.tensor(scalar, dtype=torch.long))
        self.register_buffer("enum_idx", torch.tensor(enum_idx, dtype=torch.long))
        self.register_buffer("enum_vals", torch.tensor(enum_vals, dtype=torch.float32))
        self.has_quantile = any(s.type == "quantile" for s in specs)
        self.has_enum = len(enum_idx) > 0
        self.out_features = len(scalar) + len(enum_idx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.defaults, x)
        kinds = self.kinds
        binary = (x != 0).to(x.dtype)
        p = x.clamp(1e-4, 1.0 - 1e-4)  # logit stays within about ±9.2
        logit = torch.log(p) - torch.log1p(-p)
        base = (x + self.shift).clamp_min(1e-6)
        lam = self.lam
        small = lam.abs() < 1e-8
        safe_lam = torch.where(small, torch.ones_like(lam), lam)
        bc = torch.where(small, torch.log(base), (torch.pow(base, safe_lam) - 1.0) / safe_lam)
        y = torch.where(kinds == 4, bc, x)
        z = (y - self.mean) / self.std
        out = torch.where(kinds == 1, binary, x)
        out = torch.where(kinds == 2, logit, out)
        out = torch.where((kinds == 3) | (kinds == 4), z, out)
        if self.has_quantile:
            out = torch.where(kinds == 5, self._quantile(x), out)
        out = torch.where(kinds == 0, out, out.clamp(-self.clamp, self.clamp))
        scalar = out.index_select(1, self.scalar_idx)
        if not self.has_enum:
            return scalar
        onehot = (x.index_select(1, self.enum_idx) == self.enum_vals).to(x.dtype)
        return torch.cat([scalar, onehot], dim=1)

    def _quantile(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.t().contiguous()
        k = self.q_bounds.shape[1]
        idx = torch.searchsorted(self.q_bounds, xt, right=True).clamp(1, k - 1)
        lo = self.q_bounds.gather(1, idx - 1)
        hi = self.q_bounds.gather(1, idx)
        tlo = self.q_targets.gather(1, idx - 1)
        thi = self.q_targets.gather(1, idx)
        frac = ((xt - lo) / (hi - lo).clamp_min(1e-12)).clamp(0.0, 1.0)
        u = tlo + frac * (thi - tlo)
        return (2.0 * u - 1.0).t()


@dataclass
class Normalizer:
    """Fitted preprocessing for a list of features (see module doc)."""

    specs: list[FeatureSpec]
    clamp: float = 6.0
    _module: NormalizerModule | None = field(default=None, repr=False, compare=False)

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def out_features(self) -> int:
        return sum(len(s.values) if s.type == "enum" else 1 for s in self.specs)

    def output_names(self) -> list[str]:
        scalar = [s.name for s in self.specs if s.type != "enum"]
        onehot = [f"{s.name}={v:g}" for s in self.specs if s.type == "enum" for v in s.values]
        return scalar + onehot

    def as_module(self) -> NormalizerModule:
        """A fresh TorchScript-able module computing :meth:`transform`."""
        return NormalizerModule(self.specs, self.clamp)

    def transform(self, states: np.ndarray) -> np.ndarray:
        """Raw ``(n, F)`` states (NaN = missing) → normalized float32 ``(n, out_features)``."""
        states = np.asarray(states, dtype=np.float32)
        if states.ndim != 2 or states.shape[1] != len(self.specs):
            raise ValueError(f"states: shape {states.shape}, expected (n, {len(self.specs)})")
        if self._module is None:
            self._module = self.as_module()
        with torch.no_grad():
            out: np.ndarray = self._module(torch.from_numpy(np.ascontiguousarray(states))).numpy()
        return out

    def to_manifest(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "clamp": self.clamp,
            "features": [s.to_dict() for s in self.specs],
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Normalizer:
        """Rebuild from :meth:`to_manifest`; a bad entry raises naming the field and the rule."""
        if not isinstance(manifest, dict):
            raise ValueError("normalization: must be an object")
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"normalization.format={manifest.get('format')!r}: must be {MANIFEST_FORMAT!r}"
            )
        clamp = manifest.get("clamp")
        if isinstance(clamp, bool) or not isinstance(clamp, int | float) or not clamp > 0:
            raise ValueError(f"normalization.clamp={clamp!r}: must be a positive number")
        features = manifest.get("features")
        if not isinstance(features, list):
            raise ValueError("normalization.features: must be a list")
        specs = [
            FeatureSpec.from_dict(raw, f"normalization.features[{i}]")
            for i, raw in enumerate(features)
        ]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("normalization.features: feature names must be unique")
        return cls(specs=specs, clamp=float(clamp))


def identify_type(values: np.ndarray, settings: PreprocessingSettings) -> str:
    """The ReAgent-style type of a feature from its observed (non-missing) values."""
    if values.size == 0:
        return "continuous"
    unique = np.unique(values)
    if np.isin(unique, (0.0, 1.0)).all():
        return "binary"
    if unique[0] >= 0.0 and unique[-1] <= 1.0:
        return "probability"
    if len(unique) <= settings.max_enum_values and np.all(unique == np.round(unique)):
        return "enum"
    if len(unique) > 2 and abs(skewness(values)) > settings.skew_threshold:
        return settings.skewed_transform
    return "continuous"


def _mode(values: np.ndarray) -> float:
    unique, counts = np.unique(values, return_counts=True)
    return float(unique[int(np.argmax(counts))])


def _quantile_spec(name: str, v: np.ndarray, settings: PreprocessingSettings) -> dict[str, Any]:
    levels = np.linspace(0.0, 1.0, settings.quantiles)
    bounds = np.quantile(v, levels)
    unique, inverse = np.unique(bounds, return_inverse=True)
    targets = np.array([levels[inverse == i].mean() for i in range(len(unique))])
    return {"boundaries": tuple(unique.tolist()), "targets": tuple(targets.tolist())}


def _fit_feature(name: str, column: np.ndarray, settings: PreprocessingSettings) -> FeatureSpec:
    v = column[~np.isnan(column)].astype(np.float64)
    kind = settings.overrides.get(name) or identify_type(v, settings)
    default = float(np.median(v)) if v.size else 0.0
    params: dict[str, Any] = {}
    if kind in ("binary", "enum") and v.size:
        default = _mode(v)
    if kind == "enum":
        params["values"] = tuple(np.unique(v).tolist()) if v.size else (0.0,)
    if kind == "boxcox":
        shift = 0.0
        if v.size and v.min() <= 0:
            shift = float(-v.min() + 0.1 * (v.std() or 1.0))
        try:
            lam = boxcox_lambda(v + shift)
            y = boxcox(v + shift, lam)
        except ValueError:
            lam, y = 1.0, None
        forced = settings.overrides.get(name) == "boxcox"
        if y is None or (not forced and abs(skewness(y)) > settings.skew_threshold):
            kind = "quantile"
        else:
            params.update(lam=lam, shift=shift, mean=float(y.mean()), std=float(y.std() or 1.0))
    if kind == "quantile":
        if v.size and len(np.unique(v)) > 1:
            params.update(_quantile_spec(name, v, settings))
        else:
            kind = "continuous"
    if kind == "continuous" and v.size:
        params.update(mean=float(v.mean()), std=float(v.std() or 1.0))
    if name in settings.defaults:
        default = float(settings.defaults[name])
    return FeatureSpec(name=name, type=kind, default=default, **params)


def fit_normalizer(
    states: np.ndarray, feature_names: list[str], settings: PreprocessingSettings | None = None
) -> Normalizer:
    """Identify each feature's type on a seeded sample of ``states`` and fit its parameters.

    Missing values (NaN) are ignored for fitting; overrides in ``settings`` win over detection.
    """
    settings = settings or PreprocessingSettings()
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[1] != len(feature_names):
        raise ValueError(f"states: shape {states.shape}, expected (n, {len(feature_names)})")
    unknown = sorted((set(settings.overrides) | set(settings.defaults)) - set(feature_names))
    if unknown:
        raise ValueError(f"preprocessing.overrides/defaults: unknown features {unknown}")
    if len(states) > settings.sample_size:
        rng = np.random.default_rng(settings.seed)
        states = states[rng.choice(len(states), settings.sample_size, replace=False)]
    # float64 for fitting, after sampling: a float64 copy of all the train states would be
    # twice the float32 states the run holds
    states = np.asarray(states, dtype=np.float64)
    specs = [_fit_feature(n, states[:, i], settings) for i, n in enumerate(feature_names)]
    return Normalizer(specs=specs, clamp=settings.clamp)
