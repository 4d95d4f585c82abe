"""A faster, verified equivalent of a served ``policy.pt`` for one decision at a time.

Why: at a batch of one, a TorchScript call costs a few microseconds per graph node, and the
learner's module is general (every feature runs every normalization kind and ``torch.where``
picks the right one). For a given model most of those nodes are decided by constants: which
kinds are present, the exploration settings. So the client specializes the loaded module:

1. ``torch.jit.freeze`` turns parameters and attributes into constants and folds what only
   depends on them (``kinds == 4`` ...);
2. :func:`_drop_constant_selects` replaces ``aten::where(c, a, b)`` whose condition ``c`` is a
   constant that is all true (→ ``a``) or all false (→ ``b``), where the kept input already has
   the result's shape, and dead code elimination removes the branches nobody reads (the
   box-cox, logit and quantile arithmetic of an all-identity model, say), and
   :func:`_drop_identity_ops` skips masking with an all-false constant mask and selecting
   every column in order;
3. :func:`compile_for_mask` goes further for one possible-action mask (all actions, the common
   case): the mask and the compute dtype become constants, so the exploration arithmetic that
   depends on them alone folds away too;
4. the result is **checked** against the original module's ``forward`` on probe states (with
   missing features) and every possible-action mask of up to 8 actions (a sample beyond); any
   difference above 1e-6 — or any failure of the steps above — keeps the original module.

Nothing here changes what is served, only how many interpreter steps it takes.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Forward", "MaskedForward", "batch_agrees", "compile_for_mask", "compile_served"]

log = logging.getLogger(__name__)

#: ``(states (1, F) float32, mask (1, A) bool) -> (1, A) probabilities``
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``states (1, F) float32 -> (1, A) probabilities`` for one fixed possible-action mask
MaskedForward = Callable[[torch.Tensor], torch.Tensor]


class _MaskBound(torch.nn.Module):
    """``probs_dense`` with the possible-action mask held as a buffer, so that freezing turns
    it into a constant and folds everything computed from the mask alone (the count of
    possible actions, the exploration share, the masking)."""

    def __init__(self, inner: Any, mask: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mask", mask)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        probs: torch.Tensor = self.inner.probs_dense(states, self.mask)
        return probs


_TOLERANCE = 1e-6


def _constant_bool_value(node: Any) -> bool | None:
    """True/False when ``node`` is a constant bool tensor that is all true/all false."""
    if node.kind() != "prim::Constant" or not node.hasAttribute("value"):
        return None
    if node.kindOf("value") != "t":
        return None
    value = node.t("value")
    if value.dtype != torch.bool or value.numel() == 0:
        return None
    if bool(value.all()):
        return True
    if not bool(value.any()):
        return False
    return None


def _constant_tensor(value: Any) -> torch.Tensor | None:
    node = value.node()
    if node.kind() != "prim::Constant" or not node.hasAttribute("value"):
        return None
    if node.kindOf("value") != "t":
        return None
    value_tensor: torch.Tensor = node.t("value")
    return value_tensor


def _drop_identity_ops(graph: Any, n_columns: int) -> int:
    """Rewire no-op nodes to their input: ``masked_fill`` with an all-false constant mask of
    one row, and ``index_select`` of the constant index ``0..n_columns-1`` along the columns
    (the normalizer's selection of the raw features when none is an enum)."""
    rewired = 0
    for node in list(graph.nodes()):
        inputs = list(node.inputs())
        if node.kind() == "aten::masked_fill" and len(inputs) == 3:
            mask = _constant_tensor(inputs[1])
            if mask is None or mask.dtype != torch.bool or bool(mask.any()):
                continue
            if mask.dim() > 2 or (mask.dim() == 2 and mask.shape[0] != 1):
                continue  # a mask like that could broadcast the result to a larger shape
            node.output().replaceAllUsesWith(inputs[0])
            rewired += 1
        elif node.kind() == "aten::index_select" and len(inputs) == 3:
            index = _constant_tensor(inputs[2])
            dim = inputs[1].node()
            if index is None or dim.kind() != "prim::Constant" or index.dim() != 1:
                continue
            if dim.i("value") not in (1, -1):
                continue
            if index.numel() != n_columns:
                continue  # only the selection of every raw feature is known to be the identity
            if not torch.equal(index, torch.arange(index.numel(), dtype=index.dtype)):
                continue
            node.output().replaceAllUsesWith(inputs[0])  # verified numerically by the caller
            rewired += 1
    return rewired


def _drop_constant_selects(graph: Any) -> int:
    """Rewire ``where(const, a, b)`` to ``a``/``b`` when that is shape-safe; count rewires.

    Shape safety is judged from the tensor types the frozen graph carries, which are not always
    complete, so the caller verifies the result numerically anyway.
    """
    rewired = 0
    for node in list(graph.nodes()):
        if node.kind() != "aten::where" or len(list(node.inputs())) != 3:
            continue
        condition, a, b = list(node.inputs())
        chosen = _constant_bool_value(condition.node())
        if chosen is None:
            continue
        keep = a if chosen else b
        other = b if chosen else a
        # the kept value must already be at least as large as the others (broadcast result)
        if not _broadcast_safe(keep, (condition, other)):
            continue
        node.output().replaceAllUsesWith(keep)
        rewired += 1
    torch._C._jit_pass_dce(graph)
    return rewired


def _broadcast_safe(keep: Any, others: tuple[Any, ...]) -> bool:
    """The kept input's rank is at least each other input's, and its type is a tensor."""
    keep_type = keep.type()
    if not isinstance(keep_type, torch._C.TensorType):
        return False
    keep_dim = keep_type.dim()
    for value in others:
        other_type = value.type()
        if not isinstance(other_type, torch._C.TensorType):
            return False
        other_dim = other_type.dim()
        # A kept value of unknown or lower rank than another input is only accepted when that
        # input is a 1-D constant (a per-feature vector broadcast along the batch).
        lower = other_dim is not None and (keep_dim is None or keep_dim < other_dim)
        if lower and not (other_dim == 1 and value.node().kind() == "prim::Constant"):
            return False
    return True


def _probe_masks(n_actions: int, rng: random.Random) -> list[list[bool]]:
    if n_actions <= 8:
        masks = []
        for bits in range(1, 1 << n_actions):
            masks.append([bool(bits >> i & 1) for i in range(n_actions)])
        return masks
    masks = [[True] * n_actions]
    for _ in range(32):
        mask = [rng.random() < 0.5 for _ in range(n_actions)]
        mask[rng.randrange(n_actions)] = True
        masks.append(mask)
    return masks


def _probe_states(feature_names: list[str], rng: random.Random) -> list[dict[str, float]]:
    states: list[dict[str, float]] = [{}]  # every feature missing: the defaults
    scales = (0.01, 1.0, 10.0, 1000.0)
    for i in range(24):
        scale = scales[i % len(scales)]
        state = {}
        for name in feature_names:
            if rng.random() < 0.15:
                continue  # missing feature
            state[name] = rng.gauss(0.0, scale) if i % 3 else abs(rng.gauss(0.0, scale))
        states.append(state)
    states.append({name: float(rng.randint(0, 3)) for name in feature_names})  # small ints
    return states


def _agrees(
    module: Any,
    fast: Forward,
    feature_names: list[str],
    n_actions: int,
    masks: list[list[bool]] | None = None,
) -> str | None:
    """None if ``fast`` gives the module's probabilities on the probes, else what differs."""
    rng = random.Random(20240301)
    masks = _probe_masks(n_actions, rng) if masks is None else masks
    for state in _probe_states(feature_names, rng):
        row = torch.tensor(
            [[state.get(name, float("nan")) for name in feature_names]], dtype=torch.float32
        )
        for mask in masks:
            want = module(state, mask)
            got = fast(row, torch.tensor([mask], dtype=torch.bool))[0].tolist()
            if len(got) != len(want):
                return f"length {len(got)} != {len(want)}"
            for g, w in zip(got, want, strict=True):
                if not abs(g - w) <= _TOLERANCE:
                    return f"probability {g!r} != {w!r} for state {state} and mask {mask}"
    return None


_SCALAR_TYPE = {torch.float16: 5, torch.float32: 6, torch.float64: 7, torch.bfloat16: 15}


def _fix_dtype_queries(graph: Any, dtype: torch.dtype) -> int:
    """Replace ``prim::dtype(v)`` by the constant ``dtype`` (the module's compute dtype).

    The served module computes in one dtype (its input is cast to float32 and so are its
    weights), so ``q.dtype`` is a constant; once it is one, everything derived from the mask
    and the exploration settings folds away. The caller verifies the result numerically.
    """
    code = _SCALAR_TYPE.get(dtype)
    if code is None:
        return 0
    replaced = 0
    for node in list(graph.nodes()):
        if node.kind() != "prim::dtype":
            continue
        with graph.insert_point_guard(node):
            constant = graph.insertConstant(code)
        node.output().replaceAllUsesWith(constant)
        replaced += 1
    return replaced


def _specialize(
    scripted: Any, method: str, n_features: int, dtype: torch.dtype | None = None
) -> Any:
    """Freeze ``scripted`` keeping ``method``, drop constant selects, fold constants."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preserved = [] if method == "forward" else [method]
        frozen = torch.jit.freeze(scripted.eval(), preserved_attrs=preserved)
        graph = getattr(frozen, method).graph
        _drop_constant_selects(graph)
        if dtype is not None:
            _fix_dtype_queries(graph, dtype)
        torch._C._jit_pass_constant_propagation(graph)
        _drop_identity_ops(graph, n_features)
        torch._C._jit_pass_dce(graph)
    return frozen


def compile_for_mask(
    module: Any, feature_names: list[str], mask: list[bool]
) -> MaskedForward | None:
    """A verified ``states -> probabilities`` for one possible-action ``mask``, or None.

    Worth it for the mask an application uses on (almost) every call — all actions possible,
    as in CartPole — because a dozen graph nodes depend on the mask alone.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask_tensor = torch.tensor([mask], dtype=torch.bool)
            bound = torch.jit.script(_MaskBound(module, mask_tensor))
            probe = torch.zeros((1, len(feature_names)), dtype=torch.float32)
            with torch.inference_mode():
                dtype = module.probs_dense(probe, mask_tensor).dtype
        fast = _specialize(bound, "forward", len(feature_names), dtype)
        with torch.inference_mode():
            problem = _agrees(module, lambda row, _m: fast(row), feature_names, len(mask), [mask])
    except Exception as exc:  # any failure only means: use the general path
        log.debug("mask specialization failed: %s", exc)
        return None
    if problem is not None:
        log.debug("mask-specialized policy disagrees (%s); not used", problem)
        return None
    forward: MaskedForward = fast.forward  # the script method: no nn.Module call machinery
    return forward


def compile_served(module: Any, feature_names: list[str], n_actions: int) -> tuple[Forward, str]:
    """The fastest verified way to call ``module``'s ``probs_dense``, and how it was obtained.

    Returns ``(forward, how)`` where ``how`` is ``"specialized"`` or ``"original"`` (with the
    reason in the log at DEBUG level when specialization was refused).
    """
    original: Forward = module.probs_dense
    try:
        fast: Forward = _specialize(module, "probs_dense", len(feature_names)).probs_dense
        with torch.inference_mode():
            problem = _agrees(module, fast, feature_names, n_actions)
    except Exception as exc:  # any failure only means: serve the original module
        log.debug("policy specialization failed, serving the original module: %s", exc)
        return original, "original"
    if problem is not None:
        log.debug("specialized policy disagrees (%s); serving the original module", problem)
        return original, "original"
    return fast, "specialized"


def batch_agrees(
    forward: Forward, feature_names: list[str], n_actions: int, masks: list[list[bool]] | None
) -> bool:
    """True if ``forward`` on a batch of rows gives each row's batch-of-one probabilities,
    for each of ``masks`` (default: those of :func:`_probe_masks`).

    The specializations above are verified on one row at a time; a constant folded with the
    shape of one row could broadcast differently on several. A client batches rows
    (:meth:`ServedModel.probs_many`) only once this holds on the probe states within the same
    tolerance (with more than 16 masks: all actions possible and 15 others drawn).
    """
    rng = random.Random(20240302)
    states = _probe_states(feature_names, rng)
    if masks is None:
        masks = _probe_masks(n_actions, rng)
        if len(masks) > 16:
            masks = [[True] * n_actions, *rng.sample(masks, 15)]
    rows = torch.tensor(
        [[s.get(name, float("nan")) for name in feature_names] for s in states],
        dtype=torch.float32,
    )
    try:
        with torch.inference_mode():
            for mask in masks:
                one = torch.tensor([mask], dtype=torch.bool)
                batch = forward(rows, one.expand(len(states), -1)).tolist()
                for i in range(len(states)):
                    single = forward(rows[i : i + 1], one)[0].tolist()
                    if len(batch[i]) != len(single) or any(
                        not abs(b - w) <= _TOLERANCE for b, w in zip(batch[i], single, strict=True)
                    ):
                        return False
    except Exception as exc:  # any failure only means: one row at a time
        log.debug("batched calls refused: %s", exc)
        return False
    return True
