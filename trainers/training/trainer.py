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
samplers depend only on seed and epoch). With random augmentation, one batch differs slightly:
the loader reads a batch ahead, so the batch after the checkpoint was augmented with random
draws that the resumed run makes anew.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
from transformers.trainer_utils import EvalPrediction

from modeling_scl_slt import SclSltForSignTranslation, translation_loss
from modeling_scl_slt.modeling_scl_slt import shift_tokens_right
from modeling_scl_slt.similarity import video_text_similarity

from ..method.losses import ContrastiveLossOutput, SelectiveContrastiveLoss
from ..method.pair_selection import SparseScores, load_pair_scores
from ..method.sampler import NoDuplicatesBatchSampler, PSCurriculumBatchSampler, RandomBatchSampler
from ..method.snapshots import Snapshot, pad_and_concatenate, save_snapshot, snapshot_filename
from ..method.text_groups import text_group_ids
from ..metrics import compute_translation_metrics

logger = logging.getLogger(__name__)

Stage = Literal["reference", "scl", "translate"]
TEXT_BRANCH_INPUTS = ("text_input_ids", "text_attention_mask")
BATCH_SAMPLERS: dict[str, type[Sampler]] = {
    "random": RandomBatchSampler,
    "no_duplicates": NoDuplicatesBatchSampler,
    "ps_curriculum": PSCurriculumBatchSampler,
}


@dataclass
class SclSltTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` plus the SCL-SLT stage settings.

    ``remove_unused_columns`` defaults to False: the collator needs the corpus columns
    (``frames``, ``text``) that the model's ``forward`` does not name.
    """

    stage: Stage = field(
        default="scl",
        metadata={"help": "reference (contrastive only), scl (PS batches + both losses) or translate."},
    )
    batch_sampler: Any = field(
        default="auto",
        metadata={
            "help": "auto (reference: random, scl: ps_curriculum, translate: the Trainer's own), random, "
            "no_duplicates, ps_curriculum, a Sampler class (built from the keyword arguments it names) "
            "or a callable trainer -> batch sampler."
        },
    )
    contrastive_loss: Any = field(
        default="selective",
        metadata={
            "help": "selective (identical texts masked), clip (no masking), an nn.Module class, or a "
            "callable (similarity_v2t, similarity_t2v, group_ids, logit_scale) -> ContrastiveLossOutput."
        },
    )
    contrastive_weight: float = field(default=1.0, metadata={"help": "Weight of the contrastive loss."})
    translation_weight: float = field(default=1.0, metadata={"help": "Weight of the translation loss."})
    max_logit_scale: float = field(default=100.0, metadata={"help": "Clamp of the learnable logit scale."})
    curriculum_schedule: str = field(
        default="log", metadata={"help": "PS curriculum: log, linear, sqrt, easy or hard."}
    )
    curriculum_log_base: float = field(default=10.0, metadata={"help": "Base b of the log schedule."})
    avoid_duplicate_texts: bool = field(
        default=True, metadata={"help": "Keep identical target texts out of one batch (text-aware samplers)."}
    )
    pair_selection_scores: str | None = field(
        default=None, metadata={"help": "safetensors file of Pair Selection scores (stage scl)."}
    )
    snapshot_interval: int = field(
        default=5, metadata={"help": "Reference stage: snapshot every this many epochs (and at the end)."}
    )
    snapshot_dir: str | None = field(
        default=None, metadata={"help": "Where reference snapshots go (default: output_dir/snapshots)."}
    )
    metric_language: str = field(
        default="de", metadata={"help": "BLEU tokenisation: 13a for de/en/..., characters for zh."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep corpus columns for the collator."}
    )


class SclSltTrainer(Seq2SeqTrainer):
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
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.pair_selection_scores = pair_selection_scores
        self.contrastive_loss = self._build_contrastive_loss()
        self.loss_is_scaled_for_ga = True  # compute_loss normalises for accumulation itself
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        if (
            self.compute_metrics is None
            and self.args.stage == "translate"
            and self.processing_class is not None
        ):
            self.compute_metrics = TranslationMetrics(self.processing_class, self.args.metric_language)
        if self.args.stage == "reference":
            self.add_callback(ReferenceSnapshotCallback(self))

    # --- pluggable parts ------------------------------------------------------------------
    def _build_contrastive_loss(self) -> Callable[..., ContrastiveLossOutput]:
        choice = self.args.contrastive_loss
        if choice in ("selective", "clip"):
            return SelectiveContrastiveLoss(
                learnable_logit_scale=False,  # the model owns the learnable scale
                max_logit_scale=self.args.max_logit_scale,
                mask_false_negatives=choice == "selective",
            )
        if isinstance(choice, type):
            return choice()
        if callable(choice):
            return choice
        raise ValueError(
            f"contrastive_loss must be 'selective', 'clip', a class or a callable, got {choice!r}"
        )

    def build_batch_sampler(self) -> Sampler[list[int]] | None:
        """The training batch sampler, or None for the Trainer's default random sampler."""
        choice = self.args.batch_sampler
        if choice == "auto":
            choice = {"reference": "random", "scl": "ps_curriculum", "translate": None}[self.args.stage]
        if choice is None:
            return None
        if isinstance(choice, str):
            if choice not in BATCH_SAMPLERS:
                raise ValueError(f"batch_sampler must be one of {['auto', *BATCH_SAMPLERS]}, got {choice!r}")
            choice = BATCH_SAMPLERS[choice]
        if isinstance(choice, type):
            return choice(**self._sampler_kwargs(choice))
        return choice(self)

    def _sampler_kwargs(self, sampler_class: type) -> dict[str, Any]:
        """The keyword arguments ``sampler_class`` names, from the training set and the args."""
        accepted = inspect.signature(sampler_class.__init__).parameters
        available: dict[str, Any] = {
            "num_samples": len(self.train_dataset),
            "batch_size": self.args.per_device_train_batch_size,
            "num_epochs": max(1, math.ceil(self.args.num_train_epochs)),
            "schedule": self.args.curriculum_schedule,
            "log_base": self.args.curriculum_log_base,
            "avoid_duplicate_texts": self.args.avoid_duplicate_texts,
            "seed": self.args.seed,
            "drop_last": self.args.dataloader_drop_last,
        }
        if "texts" in accepted:
            available["texts"] = self._train_texts()
        if "scores" in accepted:
            available["scores"] = self._load_scores()
        return {name: value for name, value in available.items() if name in accepted}

    def _train_texts(self) -> list[str] | None:
        names = getattr(self.train_dataset, "column_names", None) or []
        return list(self.train_dataset["text"]) if "text" in names else None

    def _load_scores(self) -> torch.Tensor | SparseScores:
        scores = self.pair_selection_scores
        if scores is None and self.args.pair_selection_scores:
            scores = load_pair_scores(self.args.pair_selection_scores)
        if scores is None:
            raise ValueError(
                "the ps_curriculum sampler needs Pair Selection scores: pass pair_selection_scores= to "
                "SclSltTrainer or set args.pair_selection_scores to a scores file"
            )
        count = scores.num_samples if isinstance(scores, SparseScores) else scores.shape[0]
        if count != len(self.train_dataset):
            raise ValueError(
                f"Pair Selection scores cover {count} samples but the training set has "
                f"{len(self.train_dataset)}"
            )
        return scores

    # --- data -------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        batch_sampler = self.build_batch_sampler()
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
        return self.accelerator.prepare(loader)

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
        stage = self.args.stage
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        if stage == "translate":
            for name in TEXT_BRANCH_INPUTS:
                inputs.pop(name, None)
        if stage != "reference":
            # Decoder inputs rather than labels: the model would compute a loss we recompute here.
            config = self.accelerator.unwrap_model(model).config
            inputs["decoder_input_ids"] = shift_tokens_right(
                labels, config.pad_token_id, config.decoder_start_token_id
            )
        outputs = model(**inputs)
        accumulation = self.current_gradient_accumulation_steps if model.training else 1
        total = torch.zeros((), device=labels.device if labels is not None else None)
        if stage != "reference":
            translation = self._translation_loss(outputs.logits, labels, num_items_in_batch, accumulation)
            total = total + self.args.translation_weight * translation
            self._record("loss_translation", translation * accumulation)
        if stage != "translate":
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
        if outputs.logits_per_video is None:
            raise ValueError(
                f"stage {self.args.stage!r} needs text_input_ids from the collator (include_text=True)"
            )
        group_ids = text_group_ids(labels) if labels is not None else None
        return self.contrastive_loss(
            outputs.logits_per_video,
            outputs.logits_per_text,
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
        if self.args.stage == "translate":
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


class TranslationMetrics:
    """``compute_metrics`` for generation: decode ids, score BLEU-1..4 and ROUGE-L."""

    def __init__(self, tokenizer: Any, language: str) -> None:
        self.tokenizer = tokenizer
        self.language = language

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        return compute_translation_metrics(
            self.decode(prediction.predictions), self.decode(prediction.label_ids), language=self.language
        )

    def decode(self, ids: np.ndarray | tuple) -> list[str]:
        ids = ids[0] if isinstance(ids, tuple) else ids
        ids = np.where(ids < 0, self.tokenizer.pad_token_id, ids)
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


@torch.no_grad()
def collect_features(
    model: SclSltForSignTranslation, dataloader: DataLoader, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Projected video and text tokens of every sample, in dataloader order, padded to one length.

    Returns ``video_tokens`` (N, Lv, P), ``video_mask`` (N, Lv), ``text_tokens`` (N, Lt, P),
    ``text_mask`` (N, Lt) on the CPU, and ``labels`` (N, L) when the batches carry labels.
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for batch in dataloader:
        batch = {
            key: value.to(device) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()
        }
        video, video_mask = model.get_video_features(batch["pixel_values"], batch.get("attention_mask"))
        text, text_mask = model.get_text_features(batch["text_input_ids"], batch.get("text_attention_mask"))
        for name, tensor in (
            ("video", video),
            ("video_mask", video_mask),
            ("text", text),
            ("text_mask", text_mask),
        ):
            parts[name].append(tensor.float().cpu())
        if "labels" in batch:
            parts["labels"].append(batch["labels"].cpu())
    model.train(was_training)
    video_tokens, video_mask = pad_and_concatenate(parts["video"], parts["video_mask"])
    text_tokens, text_mask = pad_and_concatenate(parts["text"], parts["text_mask"])
    features = {
        "video_tokens": video_tokens,
        "video_mask": video_mask,
        "text_tokens": text_tokens,
        "text_mask": text_mask,
    }
    if parts["labels"]:
        features["labels"] = pad_label_rows(parts["labels"])
    return features


def pad_label_rows(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B_i, L_i) label blocks, padding with -100 to the longest L."""
    length = max(block.shape[1] for block in blocks)
    return torch.cat(
        [torch.nn.functional.pad(block, (0, length - block.shape[1]), value=-100) for block in blocks]
    )


def blocked_similarity(
    features: dict[str, torch.Tensor], aggregation: str, temperature: float, block_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video→text (N, N) and text→video (N, N) similarity of collected features, in video blocks.

    For CiCo the two differ (each direction has its own token matching), so both are kept.
    """
    video_to_text, text_to_video = [], []
    for start in range(0, features["video_tokens"].shape[0], block_size):
        block = slice(start, start + block_size)
        rows, columns = video_text_similarity(
            features["video_tokens"][block],
            features["video_mask"][block],
            features["text_tokens"],
            features["text_mask"],
            aggregation=aggregation,
            temperature=temperature,
        )  # (b, N), (N, b)
        video_to_text.append(rows)
        text_to_video.append(columns)
    return torch.cat(video_to_text), torch.cat(text_to_video, dim=1)


def retrieval_metrics(
    model: SclSltForSignTranslation, dataloader: DataLoader, device: torch.device | str
) -> dict[str, float]:
    """Video→text and text→video recall at 1/5/10 (×100) over an evaluation set.

    A retrieved text counts as correct when it is identical to the target (same label row), so
    a duplicated sentence is not a miss: identical texts cannot be told apart.
    """
    features = collect_features(model, dataloader, device)
    video_to_text, text_to_video = blocked_similarity(
        features, model.config.similarity_aggregation, model.config.similarity_temperature
    )
    groups = (
        text_group_ids(features["labels"]) if "labels" in features else torch.arange(video_to_text.shape[0])
    )
    same_text = groups[:, None] == groups[None, :]  # (N, N)
    metrics = {}
    for direction, scores in (("video_to_text", video_to_text), ("text_to_video", text_to_video)):
        ranking = scores.argsort(dim=1, descending=True)  # (N, N)
        hits = same_text.gather(1, ranking)  # (N, N) bool, in rank order
        first_hit = hits.float().argmax(dim=1)  # rank of the first correct item
        for k in (1, 5, 10):
            metrics[f"{direction}_r{k}"] = 100.0 * float((first_hit < k).float().mean())
    return metrics


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
