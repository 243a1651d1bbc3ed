"""`SclSltTrainer`: a `transformers` Seq2SeqTrainer for the three SCL-SLT stages.

* ``reference``: contrastive loss only, random batches; snapshots of every training sample's
  embeddings every ``snapshot_interval`` epochs (what Pair Selection scores are computed from).
* ``scl``: Pair Selection curriculum batches, selective contrastive loss plus the translation
  cross-entropy (weights ``contrastive_weight`` and ``translation_weight``, both 1.0).
* ``translate``: translation cross-entropy only (label smoothing from
  ``label_smoothing_factor``), evaluated by generating and scoring BLEU-1..4 / ROUGE-L.

Gradient accumulation is exact for the translation loss (token sums divided by the Trainer's
count of label tokens over all accumulated micro-batches). The contrastive loss contrasts the
samples of one micro-batch with each other, so accumulating it averages micro-batch losses; it is
not the loss of one larger batch (that is inherent to in-batch negatives).

False negatives are recognised without extra inputs: two samples of a batch whose label rows
are identical have the same target text.

Resuming from a checkpoint reproduces the uninterrupted run's batches exactly (the batch
samplers depend only on seed and epoch, and :class:`CurriculumEpochCallback` gives the sampler its
epoch also where accelerate's wrappers hide it from the Trainer). With random augmentation in the
loader (``transform_in_model=False``), one batch differs slightly: the loader reads a batch ahead,
so the batch after the checkpoint was augmented with draws that the resumed run makes anew. When
the model transforms uint8 clips (the recipe's default), the draws come from torch's global
generator at step time, whose state the Trainer's checkpoints save and restore (not yet tested).
A checkpoint counts only once marked complete (:class:`~.checkpoints.CompleteCheckpointsTrainer`).
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import TrainerCallback
from transformers.trainer_utils import EvalPrediction

from modeling_scl_slt import decode_generated, translation_loss
from modeling_scl_slt.modeling_scl_slt import shift_tokens_right

from ..method.losses import ContrastiveLossOutput
from ..method.pair_selection import SparseScores, load_pair_scores
from ..method.text_groups import text_group_ids
from ..metrics import compute_translation_metrics
from .arguments import BatchSamplers, SclSltTrainingArguments
from .callbacks import ReferenceSnapshotCallback, broadcast_buffers_from_main
from .checkpoints import CompleteCheckpointsTrainer
from .components import BATCH_SAMPLERS, build_contrastive_loss, training_sample_ids
from .retrieval import retrieval_metrics
from .speed_switches import apply_speed_switches
from .stages import Stage, get_stage

TEXT_BRANCH_INPUTS = ("text_input_ids", "text_attention_mask")


class SclSltTrainer(CompleteCheckpointsTrainer):
    """Trainer for the reference, scl and translate stages (``args.stage``).

    Extra arguments:
        eval_data_collator: Collator for evaluation, prediction and snapshots (the centre-crop,
            no-augmentation transform); defaults to ``data_collator``.
        pair_selection_scores: Dense (N, N) tensor or :class:`SparseScores` for the
            ``ps_curriculum`` sampler; otherwise read from ``args.pair_selection_scores``.
    """

    args: SclSltTrainingArguments

    def __init__(
        self,
        *args: Any,
        eval_data_collator: Callable | None = None,
        pair_selection_scores: torch.Tensor | SparseScores | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, SclSltTrainingArguments):
            raise TypeError(f"SclSltTrainer needs SclSltTrainingArguments, got {type(self.args).__name__}")
        self.stage: Stage = get_stage(self.args.stage)
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.pair_selection_scores = pair_selection_scores
        self.train_batch_sampler: Sampler[list[int]] | None = None  # built by get_train_dataloader
        self.train_loader_length = 0  # batches per epoch of this process
        self.contrastive_loss = build_contrastive_loss(self.args, self.stage)
        self.loss_is_scaled_for_ga = True  # compute_loss normalises for accumulation itself
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        if (
            self.compute_metrics is None
            and self.stage.evaluates_by_generation
            and self.processing_class is not None
        ):
            generation_config = getattr(self.model, "generation_config", None)
            self.compute_metrics = TranslationMetrics(
                self.processing_class, self.args.metric_language, generation_config
            )
        if self.stage.takes_snapshots:
            self.add_callback(ReferenceSnapshotCallback(self, self.eval_data_collator))
        self.add_callback(CurriculumEpochCallback(self))
        apply_speed_switches(self.model, self.args)

    # --- pluggable parts ------------------------------------------------------------------
    def build_batch_sampler(self) -> Sampler[list[int]] | None:
        """``args.batch_sampler`` for the stage, or None for the Trainer's own random sampler.

        A :class:`BatchSamplers` name (``auto``: the stage's default), a ``Sampler`` class (built from
        the keyword arguments its ``__init__`` names, see :meth:`sampler_kwargs`) or a callable
        ``trainer -> batch sampler``.
        """
        choice = self.args.batch_sampler
        if isinstance(choice, str):
            if choice not in list(BatchSamplers):
                names = [sampler.value for sampler in BatchSamplers]
                raise ValueError(f"batch_sampler must be one of {names}, got {choice!r}")
            choice = BatchSamplers(choice)
            if choice is BatchSamplers.AUTO:
                choice = self.stage.default_batch_sampler
            if choice is None:
                return None
            choice = BATCH_SAMPLERS[choice]
        if isinstance(choice, type):
            return choice(**self.sampler_kwargs(choice))
        return choice(self)

    def sampler_kwargs(self, sampler_class: type) -> dict[str, Any]:
        """The keyword arguments ``sampler_class`` names, from the training set and the args."""
        args, dataset = self.args, self.train_dataset
        accepted = inspect.signature(sampler_class.__init__).parameters
        available: dict[str, Any] = {
            "num_samples": len(dataset),
            "batch_size": args.per_device_train_batch_size,
            "num_epochs": max(1, math.ceil(args.num_train_epochs)),
            "schedule": args.curriculum_schedule,
            "log_base": args.curriculum_log_base,
            "avoid_duplicate_texts": args.avoid_duplicate_texts,
            "seed": args.seed,
            "drop_last": args.dataloader_drop_last,
        }
        if "texts" in accepted:
            names = getattr(dataset, "column_names", None) or []
            available["texts"] = list(dataset["text"]) if "text" in names else None
        if "scores" in accepted:
            available["scores"] = self.training_scores()
        return {name: value for name, value in available.items() if name in accepted}

    def training_scores(self) -> torch.Tensor | SparseScores:
        """The Pair Selection scores of the training set: given to the trainer or read from the args' file.

        Scores read from a file are matched to the training set by sample name (see
        :func:`~trainers.method.pair_selection.load_pair_scores`); scores given as tensors carry no
        names, so only their count is checked.
        """
        scores = self.pair_selection_scores
        if scores is None and self.args.pair_selection_scores:
            # reordered to the training set's order, or refused when they belong to other samples
            scores = load_pair_scores(
                self.args.pair_selection_scores, sample_ids=training_sample_ids(self.train_dataset)
            )
        if scores is None:
            raise ValueError(
                "the ps_curriculum sampler needs Pair Selection scores: pass pair_selection_scores= to "
                "SclSltTrainer or set args.pair_selection_scores to a scores file"
            )
        count = scores.num_samples if isinstance(scores, SparseScores) else scores.shape[0]
        num_train = len(self.train_dataset)
        if count != num_train:
            raise ValueError(
                f"Pair Selection scores cover {count} samples but the training set has {num_train}"
            )
        return scores

    # --- data -------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        batch_sampler = self.train_batch_sampler = self.build_batch_sampler()
        if batch_sampler is None:
            return super().get_train_dataloader()
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers
            and self.args.dataloader_num_workers > 0,
        )
        loader = self.accelerator.prepare(loader)
        self.train_loader_length = len(loader)
        return loader

    def update_steps_per_epoch(self) -> int:
        """Optimiser steps per epoch, counted as the Trainer counts them (at least 1)."""
        return max(math.ceil(self.train_loader_length / self.args.gradient_accumulation_steps), 1)

    @contextmanager
    def _eval_collation(self) -> Iterator[None]:
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            yield
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        with self._eval_collation():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset: Any) -> DataLoader:
        with self._eval_collation():
            return super().get_test_dataloader(test_dataset)

    # --- loss -----------------------------------------------------------------------------
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        stage = self.stage
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        if not stage.contrastive_loss:
            for name in TEXT_BRANCH_INPUTS:
                inputs.pop(name, None)
        if stage.translation_loss:
            # Decoder inputs rather than labels: the model would compute a loss we recompute here.
            config = self.accelerator.unwrap_model(model).config
            inputs["decoder_input_ids"] = shift_tokens_right(
                labels, config.pad_token_id, config.decoder_start_token_id
            )
        outputs = model(**inputs)
        accumulation = self.current_gradient_accumulation_steps if model.training else 1
        total = torch.zeros((), device=labels.device if labels is not None else None)
        if stage.translation_loss:
            translation = self._translation_loss(outputs.logits, labels, num_items_in_batch, accumulation)
            total = total + self.args.translation_weight * translation
            self._record("loss_translation", translation * accumulation)
        if stage.contrastive_loss:
            contrastive = self._contrastive(outputs, labels)
            total = total + self.args.contrastive_weight * contrastive.loss / accumulation
            for name, value in contrastive.to_log_dict().items():
                self._record(name, value)
        return (total, outputs) if return_outputs else total

    def _translation_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        num_items_in_batch: int | torch.Tensor | None,
        accumulation: int,
    ) -> torch.Tensor:
        smoothing = self.args.label_smoothing_factor
        if num_items_in_batch is None:
            return translation_loss(logits, labels, label_smoothing=smoothing) / accumulation
        loss = translation_loss(logits, labels, num_items_in_batch, label_smoothing=smoothing)
        if self.args.average_tokens_across_devices:
            # num_items_in_batch counts every process's tokens and DDP averages gradients over them.
            loss = loss * self.accelerator.num_processes
        return loss

    def _contrastive(self, outputs: Any, labels: torch.Tensor | None) -> ContrastiveLossOutput:
        if outputs.similarity_per_video is None:
            raise ValueError(
                f"stage {self.args.stage!r} needs text_input_ids from the collator (include_text=True)"
            )
        group_ids = text_group_ids(labels) if labels is not None else None
        return self.contrastive_loss(
            outputs.similarity_per_video,
            outputs.similarity_per_text,
            group_ids=group_ids,
            logit_scale=outputs.logit_scale,
        )

    def _record(self, name: str, value: float | torch.Tensor) -> None:
        if self.model.training:
            self._loss_parts[name].append(float(value.detach() if isinstance(value, torch.Tensor) else value))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add the means of the named loss parts since the last training log."""
        if "loss" in logs and self._loss_parts:
            logs = {**logs, **{name: float(np.mean(values)) for name, values in self._loss_parts.items()}}
            self._loss_parts.clear()
        super().log(logs, *args, **kwargs)

    # --- evaluation -------------------------------------------------------------------------
    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
        **gen_kwargs: Any,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        # Generation must not carry the text branch's inputs into every decoding step.
        inputs = {key: value for key, value in inputs.items() if key not in TEXT_BRANCH_INPUTS}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
        **kwargs,
    ) -> dict[str, float]:
        """Translate stage: generation metrics; reference/scl: video↔text retrieval and losses."""
        if self.accelerator.num_processes > 1:
            # BatchNorm running statistics are per-process buffers under DDP (each forward starts
            # from the main's, then updates them on its own batch): evaluate with the main's, which
            # its checkpoints hold, so that every process computes the same metrics.
            broadcast_buffers_from_main(self.accelerator.unwrap_model(self.model))
        if self.stage.evaluates_by_generation:
            return super().evaluate(
                eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix, **kwargs
            )
        # The whole evaluation set on every process (not a shard): recall needs all candidates.
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        dataloader = DataLoader(
            dataset, batch_size=self.args.per_device_eval_batch_size, collate_fn=self.eval_data_collator
        )
        model = self.accelerator.unwrap_model(self.model)
        metrics = retrieval_metrics(model, dataloader, self.args.device)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class CurriculumEpochCallback(TrainerCallback):
    """Sets the training batch sampler's epoch (``set_epoch``) at the start of every epoch.

    Why: with several processes accelerate wraps the batch sampler in ``BatchSamplerShard``, and
    on a resume inside an epoch ``skip_first_batches`` wraps that in ``SkipBatchSampler``.
    ``DataLoaderShard.set_epoch`` reaches neither our sampler through them, nor does the
    Trainer (it looks one wrapper deep): the rest of the resumed epoch would run epoch 0's
    curriculum. The epoch is the Trainer's loop index: at the start of ``train()`` it is the
    Trainer's own ``global_step // steps per epoch`` (0 for a fresh run, the checkpoint's epoch
    on a resume), then one more at every epoch start.
    """

    def __init__(self, trainer: SclSltTrainer) -> None:
        self.trainer = trainer
        self.next_epoch = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.next_epoch = state.global_step // self.trainer.update_steps_per_epoch()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        sampler = self.trainer.train_batch_sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.next_epoch)
        self.next_epoch += 1


class TranslationMetrics:
    """``compute_metrics`` for generation: decode ids, score BLEU-1..4 and ROUGE-L.

    Predictions lose the start tokens of ``generation_config`` (the model's), as everywhere
    (:func:`~modeling_scl_slt.pipeline_scl_slt.decode_generated`); labels never carry them.
    """

    def __init__(self, tokenizer: Any, language: str, generation_config: Any = None) -> None:
        self.tokenizer = tokenizer
        self.language = language
        self.generation_config = generation_config

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        return compute_translation_metrics(
            self.decode(prediction.predictions, self.generation_config),
            self.decode(prediction.label_ids),
            language=self.language,
        )

    def decode(self, ids: np.ndarray | tuple, generation_config: Any = None) -> list[str]:
        ids = ids[0] if isinstance(ids, tuple) else ids
        return decode_generated(self.tokenizer, ids, generation_config)
