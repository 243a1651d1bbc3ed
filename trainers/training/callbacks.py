"""Callbacks of the SCL-SLT stages."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader
from transformers import TrainerCallback

from ..method.snapshots import Snapshot, save_snapshot, snapshot_filename
from .arguments import SclSltTrainingArguments
from .retrieval import collect_features

if TYPE_CHECKING:
    from .trainer import SclSltTrainer

logger = logging.getLogger(__name__)


class ReferenceSnapshotCallback(TrainerCallback):
    """Reference stage: save every training sample's embeddings every ``snapshot_interval`` epochs.

    Snapshots are taken at the end of epochs ``k · interval`` (k ≥ 1) and of the last epoch, with
    the evaluation collator (no augmentation), on the main process.
    """

    def __init__(self, trainer: SclSltTrainer) -> None:
        self.trainer = trainer

    def on_epoch_end(self, args: SclSltTrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = round(state.epoch or 0)
        last_epoch = epoch >= math.ceil(args.num_train_epochs)
        if epoch % args.snapshot_interval and not last_epoch:
            return
        if self.trainer.is_world_process_zero():
            self.save_snapshot(args, state.global_step, epoch)
        self.trainer.accelerator.wait_for_everyone()

    def save_snapshot(self, args: SclSltTrainingArguments, step: int, epoch: int) -> Path:
        trainer = self.trainer
        model = trainer.accelerator.unwrap_model(trainer.model)
        dataset = trainer.train_dataset
        loader = DataLoader(
            dataset, batch_size=args.per_device_eval_batch_size, collate_fn=trainer.eval_data_collator
        )
        features = collect_features(model, loader, args.device)
        names = dataset["name"] if "name" in (dataset.column_names or []) else list(range(len(dataset)))
        snapshot = Snapshot.from_embeddings(
            sample_ids=list(names),
            step=step,
            epoch=epoch,
            video_tokens=features["video_tokens"],
            video_mask=features["video_mask"],
            text_tokens=features["text_tokens"],
            text_mask=features["text_mask"],
            aggregation=model.config.similarity_aggregation,
            temperature=model.config.similarity_temperature,
            checkpoint_path=args.output_dir,
        )
        folder = Path(args.snapshot_dir or Path(args.output_dir) / "snapshots")
        path = save_snapshot(snapshot, folder / snapshot_filename(step))
        logger.info("saved reference snapshot of %d samples at epoch %d to %s", len(names), epoch, path)
        return path
