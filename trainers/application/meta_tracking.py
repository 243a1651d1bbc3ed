"""Following the memory of a step on torch's meta device: live storage bytes, data-free answers, autocast.

:class:`LiveBytes` is a dispatch mode that follows every tensor storage created under it until the
storage is freed and keeps the peak of the bytes alive at once (per *phase*, a label the caller
moves along). :class:`EmulatedAutocast` gives meta tensors the dtypes ``torch.autocast`` would
give them. Two data-dependent questions get the answers of a batch without padding (see
:func:`meta_step_answers`). ``trainers.application.memory_estimate`` runs a training step with them.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.fx.experimental._config as fx_config
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

# --- following the storages of a step ------------------------------------------------------------
# (operator, argument metadata) → the result's leaves as templates, and its tree structure.
REMEMBERED_RESULTS: dict[tuple, tuple[list, Any]] = {}
MAX_REMEMBERED_RESULTS = 200_000


class LiveBytes(TorchDispatchMode):
    """Bytes of the tensor storages created under this mode and still alive; ``peak`` is their maximum.

    A storage counts from the operator that creates it until the last reference to it (a tensor, a
    view, a tensor saved for backward) is gone: torch keeps a storage's Python object alive exactly
    as long as the storage, so a ``weakref.finalize`` on it fires when the memory is released.
    Storages that existed before (weights, gradients) are not counted, also when an in-place
    operator returns them. ``phase`` names the part of the step that runs; ``peaks`` holds the
    peak reached in each phase.

    On meta tensors an operator's results depend on the metadata of its inputs only, so the results
    of operators that neither write to nor alias their inputs are remembered by that metadata (in
    :data:`REMEMBERED_RESULTS`, for every step of the process) and rebuilt without running the
    (mostly Python) meta kernel again: a chunked backbone repeats the same operators hundreds of
    times, and every row of a plan repeats most of the step before it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.phase = "step"
        self.peaks: dict[str, int] = {}
        self._alive: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            return answer_without_data(args[0])  # a real tensor (LayerDrop's random draw) is read
        kind = operator_kind(func)
        if kind == "aliasing":  # views and in-place operators return storages that exist already
            return func(*args, **kwargs)
        result = self._remembered(func, args, kwargs) if kind == "pure" else func(*args, **kwargs)
        self._follow_new_storages(result, (args, kwargs))
        return result

    def _remembered(self, func: Any, args: tuple, kwargs: dict) -> Any:
        if next(tensors_in((args, kwargs)), None) is None:  # a factory (rand, arange): not by metadata
            return func(*args, **kwargs)
        try:
            key = (func, describe(args), describe(kwargs))
        except _Uncacheable:  # a tensor that is not on meta
            return func(*args, **kwargs)
        if key in REMEMBERED_RESULTS:
            return rebuild_result(*REMEMBERED_RESULTS[key])
        result = func(*args, **kwargs)
        leaves, spec = torch.utils._pytree.tree_flatten(result)
        if len(REMEMBERED_RESULTS) < MAX_REMEMBERED_RESULTS:
            REMEMBERED_RESULTS[key] = ([leaf_template(leaf) for leaf in leaves], spec)
        return result

    def _follow_new_storages(self, result: Any, inputs: Any) -> None:
        existing: set[int] | None = None
        for tensor in tensors_in(result):
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self._alive:
                continue
            if existing is None:
                existing = {item.untyped_storage()._cdata for item in tensors_in(inputs)}
            if key in existing:
                continue
            size = storage.nbytes()
            self._alive.add(key)
            self.current += size
            if self.current > self.peaks.get(self.phase, 0):
                self.peaks[self.phase] = self.current
            release = weakref.finalize(storage, self._release, key, size)
            release.atexit = False

    @property
    def peak(self) -> int:
        """The peak over every phase."""
        return max(self.peaks.values(), default=0)

    def _release(self, key: int, size: int) -> None:
        self._alive.discard(key)
        self.current -= size


class _Uncacheable(Exception):
    """An argument whose metadata does not identify an operator's result."""


SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)


@functools.cache
def operator_kind(func: Any) -> str:
    """``aliasing`` when every result of ``func`` is (a view of) an argument, ``pure`` when it
    neither writes to nor aliases any argument (its schema has no alias annotations; its result
    is then a function of its arguments' metadata on meta), else ``other``."""
    schema = getattr(func, "_schema", None)
    if schema is None:
        return "other"
    if schema.returns and all(item.alias_info is not None for item in schema.returns):
        return "aliasing"
    if any(item.alias_info is not None for item in (*schema.arguments, *schema.returns)):
        return "other"
    return "pure"


def describe(value: Any) -> Any:
    """A hashable description of arguments: a tensor by shape, strides and dtype."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            raise _Uncacheable
        return (value.shape, value.stride(), value.dtype)
    if isinstance(value, list | tuple):
        return tuple(describe(item) for item in value)
    if isinstance(value, dict):
        return tuple((name, describe(item)) for name, item in sorted(value.items()))
    if isinstance(value, SCALARS):
        return (type(value), value)
    raise _Uncacheable


def leaf_template(leaf: Any) -> Any:
    """A result leaf as what rebuilds it: a tensor's (shape, strides, dtype), anything else as is."""
    if isinstance(leaf, torch.Tensor):
        return ("tensor", tuple(leaf.shape), leaf.stride(), leaf.dtype)
    return ("value", leaf)


def rebuild_result(templates: list, spec: Any) -> Any:
    """Fresh meta tensors (and the other values) of a remembered result."""
    leaves = [
        torch.empty_strided(item[1], item[2], dtype=item[3], device="meta")
        if item[0] == "tensor"
        else item[1]
        for item in templates
    ]
    return spec.unflatten(leaves)


def tensors_in(tree: Any) -> Iterator[torch.Tensor]:
    """The tensors in a nested structure (tuples, lists, dicts) of arguments or results."""
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from tensors_in(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from tensors_in(item)


def answer_without_data(tensor: torch.Tensor) -> bool:
    """``bool(mask.all())`` of a meta tensor: True, since the estimated batch has no padding."""
    if tensor.dtype == torch.bool:
        return True
    raise RuntimeError(
        f"the memory estimate cannot read the value of a {tensor.dtype} tensor on {tensor.device}: "
        "the model asked a question about data that the meta step does not have"
    )


@contextlib.contextmanager
def meta_step_answers() -> Iterator[None]:
    """Boolean indexing on meta tensors selects every element (a batch without padding)."""
    with fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        yield


# --- autocast on the meta device ---------------------------------------------------------------
class EmulatedAutocast(torch.overrides.TorchFunctionMode):
    """``torch.autocast`` for meta tensors (which autocast ignores), following its op lists.

    Matrix products, convolutions and attention run in ``dtype``; under ``policy="cuda"`` the ops of
    CUDA autocast's float32 list that this model uses (layer norm, softmax, normalisation, sums,
    losses) run in float32, under ``policy="cpu"`` only the losses do (CPU autocast's list). As in
    autocast, the cast of a weight (a leaf that requires grad) is made once per entry and reused
    (``cache_weights``). Activation checkpointing recomputes under the autocast state of the
    forward: enter a second instance (without the cache: each recomputation casts anew) around
    backward.
    """

    def __init__(self, dtype: torch.dtype, policy: str = "cuda", cache_weights: bool = True) -> None:
        super().__init__()
        self.dtype = dtype
        self.float32_ops = FLOAT32_OPS[policy]
        self.cache_weights = cache_weights
        self._weight_casts: dict[tuple[int, torch.dtype], torch.Tensor] = {}

    def __exit__(self, *exc_info: Any) -> Any:
        self._weight_casts.clear()  # autocast drops its cast cache when it is left
        return super().__exit__(*exc_info)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in LOW_PRECISION_OPS:
            args, kwargs = self._cast((args, kwargs), self.dtype)
        elif func in self.float32_ops:
            args, kwargs = self._cast((args, kwargs), torch.float32)
        return func(*args, **kwargs)

    def _cast(self, tree: Any, dtype: torch.dtype) -> Any:
        leaves, spec = torch.utils._pytree.tree_flatten(tree)
        return spec.unflatten([self._cast_one(leaf, dtype) for leaf in leaves])

    def _cast_one(self, value: Any, dtype: torch.dtype) -> Any:
        eligible = (
            isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64
        )
        if not eligible or value.dtype == dtype:
            return value
        if not (self.cache_weights and value.is_leaf and value.requires_grad):
            return value.to(dtype)
        key = (id(value), dtype)
        if key not in self._weight_casts:
            self._weight_casts[key] = value.to(dtype)
        return self._weight_casts[key]


LOW_PRECISION_OPS = {
    F.linear,
    F.conv1d,
    F.conv2d,
    F.scaled_dot_product_attention,
    torch.matmul,
    torch.bmm,
    torch.baddbmm,
    torch.mm,
    torch.addmm,
    torch.einsum,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.Tensor.bmm,
    torch.Tensor.mm,
}
_LOSSES = {F.cross_entropy, F.nll_loss, F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits}
FLOAT32_OPS: dict[str, set[Callable]] = {
    "cpu": _LOSSES,
    "cuda": _LOSSES
    | {
        F.layer_norm,
        F.group_norm,
        F.softmax,
        F.log_softmax,
        F.normalize,
        torch.softmax,
        torch.log_softmax,
        torch.Tensor.softmax,
        torch.Tensor.log_softmax,
        torch.exp,
        torch.Tensor.exp,
        torch.sum,
        torch.Tensor.sum,
        torch.pow,
        torch.Tensor.pow,
        torch.rsqrt,
        torch.Tensor.rsqrt,
        torch.cumsum,
        torch.Tensor.cumsum,
        torch.logsumexp,
    },
}
