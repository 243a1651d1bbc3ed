"""Which of a stage's checkpoint folders are complete, and the resume from the last complete one.

The Trainer writes a checkpoint folder file by file (model, optimizer and scheduler, one RNG state
per process, ``trainer_state.json``), in place; a process killed meanwhile leaves a folder that
looks like a checkpoint but cannot be resumed from. Rule: a checkpoint is complete when it holds
:data:`COMPLETE_MARKER`, which :class:`CompleteCheckpointsTrainer` (the base of ``SclSltTrainer``)
writes (main process, atomically) after every process has finished its part of the save and
before older checkpoints are rotated away. Checkpoints written before markers existed (no
checkpoint of the folder has one) count as complete when their ``trainer_state.json``, which
the Trainer writes last, reads as JSON.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..method.atomic_files import kill_point, write_text_atomically

COMPLETE_MARKER = "checkpoint_complete.json"
TRAINER_STATE = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


class CompleteCheckpointsTrainer(Seq2SeqTrainer):
    """A Seq2SeqTrainer whose checkpoints are marked complete once saved by every process.

    Older checkpoints are rotated away (``save_total_limit``) only after the new one is marked, so
    a kill at any instant leaves at least one complete checkpoint once one was saved.
    """

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            run_dir, step = self._get_output_dir(trial=trial), self.state.global_step
            mark_checkpoint_complete(Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}", step)
            best = self.state.best_model_checkpoint
            rotate_checkpoints(run_dir, save_total_limit=limit, best_model_checkpoint=best, use_mtime=True)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call=_internal_call)
        if _internal_call:
            kill_point("checkpoint")  # fault injection: the model is saved, the optimizer not yet


def mark_checkpoint_complete(folder: str | Path, global_step: int) -> Path:
    """Write ``folder``'s completeness marker (call it once every process has saved its part)."""
    text = json.dumps({"global_step": global_step}) + "\n"
    return write_text_atomically(Path(folder) / COMPLETE_MARKER, text, "checkpoint_marker")


def checkpoint_folders(stage_dir: str | Path) -> list[Path]:
    """The ``checkpoint-STEP`` folders of ``stage_dir``, by step."""
    stage_dir = Path(stage_dir)
    if not stage_dir.is_dir():
        return []
    found = [path for path in stage_dir.iterdir() if CHECKPOINT_NAME.match(path.name) and path.is_dir()]
    return sorted(found, key=lambda path: int(CHECKPOINT_NAME.match(path.name).group(1)))


def is_complete(folder: Path, markers_in_use: bool) -> bool:
    """Whether the checkpoint ``folder`` can be resumed from (see the module's rule)."""
    if markers_in_use:
        return (folder / COMPLETE_MARKER).is_file()
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(
    stage_dir: str | Path, report: Callable[[str], None], delete_incomplete: bool
) -> Path | None:
    """The last complete checkpoint of ``stage_dir`` (None when there is none).

    Each incomplete one gets one line through ``report``; with ``delete_incomplete`` (the main
    process) it is deleted too, so that the Trainer neither counts it when rotating nor saves into
    its leftovers. Call it on every process and let them wait for the main one afterwards.
    """
    folders = checkpoint_folders(stage_dir)
    markers_in_use = any((folder / COMPLETE_MARKER).is_file() for folder in folders)
    complete = None
    for folder in folders:
        if is_complete(folder, markers_in_use):
            complete = folder
            continue
        action = "deleted it" if delete_incomplete else "skipped it"
        report(f"{folder} is an incomplete checkpoint (the run was killed while saving it): {action}")
        if delete_incomplete:
            shutil.rmtree(folder)
    return complete
