"""Callbacks of the SCL-SLT stages."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset
from transformers import Trainer, TrainerCallback

from ..method.snapshots import TOKEN_TENSORS, Snapshot, pad_and_concatenate, save_snapshot, snapshot_filename
from .arguments import SclSltTrainingArguments
from .retrieval import collect_features

logger = logging.getLogger(__name__)

SNAPSHOT_DTYPE = torch.float16  # what a snapshot file stores; the shares travel in it too
Features = dict[str, torch.Tensor]


class ReferenceSnapshotCallback(TrainerCallback):
    """Reference stage: save every training sample's embeddings every ``snapshot_interval`` epochs.

    Snapshots are taken at the end of epochs ``k · interval`` (k ≥ 1) and of the last epoch, with
    the evaluation collator (no augmentation). Every process embeds its share of the training set
    (:func:`batch_aligned_share`, with ``dataloader_num_workers`` loader workers); the shares are
    gathered to the main process, which writes the file: the same bytes as one process's.

    Args:
        trainer: The running Trainer: its model, accelerator and training set are embedded.
        eval_data_collator: Collator of the snapshot batches (the evaluation transform).
    """

    def __init__(self, trainer: Trainer, eval_data_collator: Callable) -> None:
        self.trainer = trainer
        self.eval_data_collator = eval_data_collator

    def on_epoch_end(self, args: SclSltTrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = round(state.epoch or 0)
        last_epoch = epoch >= math.ceil(args.num_train_epochs)
        if epoch % args.snapshot_interval and not last_epoch:
            return
        self.save_snapshot(args, state.global_step, epoch)
        self.trainer.accelerator.wait_for_everyone()

    def save_snapshot(self, args: SclSltTrainingArguments, step: int, epoch: int) -> Path | None:
        """Embed this process's share, gather; the main process writes. Its path there, else None."""
        trainer = self.trainer
        accelerator = trainer.accelerator
        model = accelerator.unwrap_model(trainer.model)
        dataset = trainer.train_dataset
        if accelerator.num_processes > 1:
            # BatchNorm running statistics are per-process buffers under DDP: embed with the main's
            broadcast_buffers_from_main(model)
        batch_size = args.per_device_eval_batch_size
        share = batch_aligned_share(
            len(dataset), batch_size, accelerator.process_index, accelerator.num_processes
        )
        features = None
        if len(share):
            loader = DataLoader(
                Subset(dataset, share),
                batch_size=batch_size,
                collate_fn=self.eval_data_collator,
                num_workers=args.dataloader_num_workers,
            )
            features = collect_features(model, loader, args.device, normalize_to=SNAPSHOT_DTYPE)
        gathered = gather_shares_to_main(features, accelerator.num_processes)
        if gathered is None:
            return None
        names = dataset["name"] if "name" in (dataset.column_names or []) else list(range(len(dataset)))
        snapshot = Snapshot(
            sample_ids=list(names),
            step=step,
            epoch=epoch,
            aggregation=model.config.similarity_aggregation,
            temperature=model.config.similarity_temperature,
            checkpoint_path=args.output_dir,
            **gathered,
        )
        folder = Path(args.snapshot_dir or Path(args.output_dir) / "snapshots")
        path = save_snapshot(snapshot, folder / snapshot_filename(step), dtype=SNAPSHOT_DTYPE)
        logger.info("saved reference snapshot of %d samples at epoch %d to %s", len(names), epoch, path)
        return path


def batch_aligned_share(num_samples: int, batch_size: int, process_index: int, num_processes: int) -> range:
    """The contiguous run of samples that one process embeds for a snapshot.

    The batches are those of ONE process walking the set in order (``batch_size`` each, the last
    one short), dealt out as balanced contiguous runs of whole batches: every sample is embedded
    in the same batch as by one process, which matters because a model's outputs at padded
    positions (stored in the snapshot) depend on the batch. A process may get no batch.
    """
    num_batches = math.ceil(num_samples / batch_size)
    first = process_index * num_batches // num_processes
    last = (process_index + 1) * num_batches // num_processes
    return range(min(first * batch_size, num_samples), min(last * batch_size, num_samples))


def broadcast_buffers_from_main(model: torch.nn.Module) -> None:
    """Give every process the main process's buffers (BatchNorm running statistics), in place."""
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def gather_shares_to_main(features: Features | None, num_processes: int) -> Features | None:
    """The whole set's snapshot tensors on the main process (None elsewhere), in sample order.

    ``features`` is this process's share (:func:`batch_aligned_share`; None for an empty one):
    normalised ``video_tokens`` / ``text_tokens`` (n, L, D) in ``SNAPSHOT_DTYPE`` and bool masks
    (n, L), each share padded to its own longest sample. One tensor kind at a time travels to
    the main process (``gather_object``), which pads the shares to the longest overall
    (:func:`assemble_shares`) before the next kind comes.
    """
    if num_processes == 1:
        return assemble_shares([features])
    main = dist.get_rank() == 0
    gathered: Features = {}
    for mask_name, tokens_name in (("video_mask", "video_tokens"), ("text_mask", "text_tokens")):
        shares: dict[str, list[Any] | None] = {}
        for name in (mask_name, tokens_name):
            shares[name] = [None] * num_processes if main else None
            dist.gather_object(None if features is None else features[name], shares[name], dst=0)
        if main:
            parts = [{name: shares[name][rank] for name in shares} for rank in range(num_processes)]
            gathered.update(assemble_shares(parts, names=(tokens_name, mask_name)))
    return gathered if main else None


def assemble_shares(
    shares: list[dict[str, torch.Tensor | None] | None], names: tuple[str, ...] = TOKEN_TENSORS
) -> Features:
    """Concatenate the shares of the processes in order, right-padding tokens and masks to one length.

    ``names`` are (tokens, mask, tokens, mask, …) pairs; an empty share is None (or holds None).
    """
    present = [share for share in shares if share is not None and share[names[0]] is not None]
    if not present:
        raise ValueError("No process embedded any sample: the training set is empty.")
    result: Features = {}
    for tokens, mask in zip(names[0::2], names[1::2], strict=True):
        result[tokens], result[mask] = pad_and_concatenate(
            [share[tokens] for share in present], [share[mask] for share in present]
        )
    return result
