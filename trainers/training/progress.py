"""What a person watching a run sees: one progress bar per training stage, result lines, no dicts.

A stage's bar says what runs, how far it is and how long is left::

    stage 2 of 4: scl |████████            | 24/60 steps · 00:41 elapsed, 01:02 left, loss 3.412, epoch 2.4/6

Evaluation by generation gets a second bar below it (:func:`task_bar` gives the final
evaluation its own), and the end of an epoch says what happens then (snapshot, checkpoint).
Results (dev BLEU-4 of an evaluation) go to the recipe's ``report`` as single lines, never as
the Trainer's per-step dictionaries.

Bars are drawn only when stdout and stderr are both terminals, and never inside
``progress_display(enabled=False)`` (``--quiet``). :func:`progress_display` also switches off the
progress bars of transformers, huggingface_hub and datasets ("Loading weights", "Writing model
shards", "Generating train split"): a recipe run loads and saves small models many times, and
those bars say nothing a user needs.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from tqdm.auto import tqdm
from transformers import TrainerCallback

Report = Callable[[str], None]
T = TypeVar("T")

# None: decide by the terminal; True / False: chosen by the caller (False is `--quiet`).
_ENABLED: ContextVar[bool | None] = ContextVar("scl_slt_progress_enabled", default=None)
STAGE_BAR_FORMAT = (
    "{desc} |{bar:20}| {n_fmt}/{total_fmt} steps · {elapsed} elapsed, {remaining} left{postfix}"
)
TASK_BAR_FORMAT = "{desc} |{bar:20}| {n_fmt}/{total_fmt} {unit} · {elapsed} elapsed, {remaining} left"


def attached_to_terminal() -> bool:
    """Whether stdout and stderr are both terminals (bars are drawn on stderr, results on stdout)."""
    return all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))


def progress_enabled() -> bool:
    """Whether bars are drawn now: as :func:`progress_display` chose, or when attached to a terminal."""
    chosen = _ENABLED.get()
    return attached_to_terminal() if chosen is None else chosen


@contextmanager
def progress_display(enabled: bool | None = None) -> Iterator[None]:
    """Inside: our bars follow ``enabled`` (None: only on a terminal) and the libraries' bars are off.

    ``enabled=False`` is the CLI's ``--quiet``; ``True`` draws bars even into a file or pipe.
    """
    token = _ENABLED.set(enabled)
    try:
        with library_progress_bars_disabled():
            yield
    finally:
        _ENABLED.reset(token)


@contextmanager
def library_progress_bars_disabled() -> Iterator[None]:
    """Switch off the progress bars of transformers, huggingface_hub and datasets; restore them after."""
    import datasets
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as transformers_logging

    restore: list[Callable[[], None]] = []
    if transformers_logging.is_progress_bar_enabled():
        restore.append(transformers_logging.enable_progress_bar)
    if not hub_utils.are_progress_bars_disabled():
        restore.append(hub_utils.enable_progress_bars)
    if datasets.is_progress_bar_enabled():
        restore.append(datasets.enable_progress_bars)
    transformers_logging.disable_progress_bar()  # also huggingface_hub's
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        for enable in restore:
            enable()


def task_bar(
    items: Iterable[T], description: str, total: int | None = None, unit: str = "batches"
) -> Iterable[T]:
    """``items`` with a bar (``description``, done / total, ETA) while progress is enabled."""
    if not progress_enabled():
        return items
    return tqdm(
        items,
        desc=description,
        total=total,
        unit=unit,
        bar_format=TASK_BAR_FORMAT,
        leave=False,
        **width_options(),
    )


def report_safely(report: Report, message: str) -> None:
    """``report(message)`` without tearing a bar that is on screen (tqdm redraws it below)."""
    with tqdm.external_write_mode():
        report(message)


class StageProgressCallback(TrainerCallback):
    """One bar for a whole training stage, on the main process, instead of the Trainer's log dicts.

    Args:
        title: What runs, e.g. ``"stage 2 of 4: scl"`` (the bar's label).
        name: The stage's short name for report lines, e.g. ``"scl"``.
        report: Where result lines go (generation metrics of each evaluation).
        takes_snapshots: Whether an epoch's end saves a snapshot (said on the bar while it runs).

    After training, :attr:`summary` holds the Trainer's closing log (``train_runtime``,
    ``train_loss``, …). The recipe removes the Trainer's ``PrinterCallback``, which would print
    every log as a dictionary.
    """

    def __init__(self, title: str, name: str, report: Report = print, takes_snapshots: bool = False) -> None:
        self.title = title
        self.name = name
        self.report = report
        self.takes_snapshots = takes_snapshots
        self.summary: dict[str, float] = {}
        self.bar: Any = None
        self.eval_bar: Any = None
        self.loss: float | None = None

    # --- training ---------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (state.is_world_process_zero and progress_enabled()):
            return
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,  # a resumed stage starts where its checkpoint stopped
            desc=self.title,
            bar_format=STAGE_BAR_FORMAT,
            **width_options(),
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self._show(state, status=None)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is None or not self.takes_snapshots:
            return
        # The snapshot callback runs after this one: say so while it embeds every training sample.
        epoch = round(state.epoch or 0)
        interval = getattr(args, "snapshot_interval", None) or 1
        if epoch % interval == 0 or epoch >= math.ceil(args.num_train_epochs):
            self._show(state, status=f"epoch {epoch} done: saving a snapshot of every training sample…")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs
    ) -> None:
        logs = logs or {}
        if "train_runtime" in logs:
            self.summary = dict(logs)
        elif "loss" in logs:
            self.loss = float(logs["loss"])
            if self.bar is not None:
                self._show(state, status=None)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for bar in (self.eval_bar, self.bar):
            if bar is not None:
                bar.close()
        self.bar = self.eval_bar = None

    # --- evaluation during training ---------------------------------------------------------
    def on_prediction_step(
        self, args: Any, state: Any, control: Any, eval_dataloader: Any = None, **kwargs
    ) -> None:
        if self.bar is None:
            return
        if self.eval_bar is None:
            total = len(eval_dataloader) if eval_dataloader is not None else None
            self.eval_bar = tqdm(
                total=total,
                desc="  evaluating on dev",
                unit="batches",
                bar_format=TASK_BAR_FORMAT,
                leave=False,
                **width_options(),
            )
        self.eval_bar.update(1)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs
    ):
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None
        metrics = metrics or {}
        if state.is_world_process_zero and "eval_bleu4" in metrics:
            line = (
                f"stage {self.name}: epoch {state.epoch or 0:.3g}, dev BLEU-4 {metrics['eval_bleu4']:.2f}, "
                f"ROUGE-L {metrics.get('eval_rouge_l', float('nan')):.2f}"
            )
            report_safely(self.report, line)

    def _show(self, state: Any, status: str | None) -> None:
        if status:
            details = [status]
        else:
            details = [f"loss {self.loss:.3f}"] if self.loss is not None else []
            details.append(f"epoch {state.epoch or 0:.1f}/{state.num_train_epochs:g}")
        self.bar.set_postfix_str(", ".join(details), refresh=True)


def width_options() -> dict[str, Any]:
    """Follow the terminal's size; a fixed one where it reports none (tqdm would draw nothing)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": 120, "nrows": 24}


def format_duration(seconds: float) -> str:
    """``75.2`` → ``"1 min 15 s"``; ``8.4`` → ``"8.4 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
