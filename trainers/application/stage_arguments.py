"""The Trainer arguments of each recipe stage, from the recipe config."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import torch

from ..training.arguments import SclSltTrainingArguments
from .recipe_config import RecipeConfig, StageSection
from .run_paths import RunPaths
from .run_setup import metric_language

# The most loader workers ``num_workers: auto`` picks (each worker costs memory: its own decoding
# state and prefetched batches).
MAX_AUTO_WORKERS = 8


def device_arguments(config: RecipeConfig) -> dict[str, Any]:
    """Device, precision, data-loading and speed arguments shared by every stage (``auto`` resolved here)."""
    precision = resolved_precision(config.precision)
    return {
        "use_cpu": not torch.cuda.is_available(),
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "dataloader_num_workers": resolved_num_workers(config.num_workers),
        "optim": resolved_optimizer(config.optimizer),
        "cudnn_benchmark": resolved_cudnn_benchmark(config.cudnn_benchmark),
        "backbone_compile": config.backbone_compile,
    }


def checkpointing_argument() -> str:
    """The Trainer's gradient-checkpointing argument: ``activation_checkpointing`` from transformers 5.24
    on (``gradient_checkpointing`` is then its deprecated alias), ``gradient_checkpointing`` before."""
    names = {item.name for item in dataclasses.fields(SclSltTrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def resolved_optimizer(optimizer: str) -> str:
    """``optimizer`` with ``auto`` made concrete: ``adamw_torch_fused`` wherever the recipe trains.

    The recipe trains on CUDA or on the CPU, and torch has fused AdamW kernels for both; fused is
    also the Trainer's own default (the comparison with ``adamw_torch`` is in ``benchmarks/RESULTS.md``).
    """
    return "adamw_torch_fused" if optimizer == "auto" else optimizer


def resolved_cudnn_benchmark(cudnn_benchmark: bool | str) -> bool:
    """``cudnn_benchmark`` with ``auto`` made concrete: on where CUDA is available."""
    if cudnn_benchmark == "auto":
        return torch.cuda.is_available()
    return bool(cudnn_benchmark)


def resolved_channels_last(channels_last: bool | str) -> bool:
    """``model.backbone_channels_last`` with ``auto`` made concrete: on where CUDA is available.

    cuDNN's convolutions are made for NHWC (tensor-core kernels above all). On a CPU the NHWC
    kernels depend on the processor and are wrong on some: ``auto`` keeps NCHW there, and ``true``
    is checked by the Trainer's probe (``trainers.training.speed_switches``).
    """
    if channels_last == "auto":
        return torch.cuda.is_available()
    return bool(channels_last)


def resolved_precision(precision: str) -> str:
    """``precision`` with ``auto`` made concrete: bf16 on a GPU that supports it, else fp32.

    Never bf16 on a CPU, where autocast is far slower than fp32 (``benchmarks/RESULTS.md``).
    """
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def resolved_num_workers(num_workers: int | str) -> int:
    """``num_workers`` with ``auto`` made concrete: ``min(8, cores per process - 1)``.

    The cores are those this process may run on, shared by the launch's local processes
    (``LOCAL_WORLD_SIZE``, set by torchrun / accelerate launch); each training process keeps one
    core for itself, so one core gives 0 workers (loading in the training process).
    """
    if num_workers != "auto":
        return int(num_workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(MAX_AUTO_WORKERS, cores // local_processes - 1))


def optimizer_steps_per_epoch(
    num_train: int, batch_size: int, gradient_accumulation_steps: int, num_processes: int
) -> int:
    """Optimizer steps in one epoch, counted as the Trainer counts them under accelerate.

    Each process takes every ``num_processes``-th batch of ``batch_size`` (the last one may be
    short), and ``gradient_accumulation_steps`` batches make one step (the last step may take fewer).
    """
    batches_per_process = math.ceil(math.ceil(num_train / batch_size) / num_processes)
    return max(1, math.ceil(batches_per_process / gradient_accumulation_steps))


def stage_arguments(
    stage: str,
    config: RecipeConfig,
    paths: RunPaths,
    num_train: int,
    num_processes: int = 1,
) -> SclSltTrainingArguments:
    """Trainer arguments of one stage from its config section.

    ``num_processes`` (the launch's world size) sets how many optimizer steps an epoch has, which
    stage translate's ``eval_every_epochs`` is converted to.
    """
    section: StageSection = getattr(config, stage)
    values: dict[str, Any] = {
        "output_dir": str(paths.stage(stage)),
        "stage": stage,
        "num_train_epochs": section.epochs,
        "per_device_train_batch_size": section.batch_size,
        "per_device_eval_batch_size": section.eval_batch_size,
        "learning_rate": section.learning_rate,
        "weight_decay": section.weight_decay,
        "warmup_steps": section.warmup_ratio,  # a float below 1 is a ratio of the total steps
        "lr_scheduler_type": section.lr_scheduler,
        "gradient_accumulation_steps": section.gradient_accumulation_steps,
        "max_grad_norm": section.max_grad_norm,
        checkpointing_argument(): section.gradient_checkpointing,
        "logging_steps": section.logging_steps,
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "seed": config.seed,
        "report_to": [],
        "metric_language": metric_language(config),
        # No Trainer bar: the recipe draws one bar per stage (trainers.training.progress) and
        # replaces the Trainer's log printer, so logs carry no per-step dictionaries.
        "disable_tqdm": True,
        **device_arguments(config),
    }
    if stage == "reference":
        values.update(reference_arguments(config, paths))
    elif stage == "scl":
        values.update(scl_arguments(config, paths))
    else:
        values.update(translate_arguments(config, num_train, num_processes))
    return SclSltTrainingArguments(**values)


def reference_arguments(config: RecipeConfig, paths: RunPaths) -> dict[str, Any]:
    """Stage reference: the plain contrastive run whose snapshots Pair Selection reads."""
    return {
        "contrastive_loss": config.reference.contrastive_loss,
        "snapshot_interval": config.reference.snapshot_interval,
        "snapshot_dir": str(paths.snapshots),
        "ddp_find_unused_parameters": True,  # the decoder takes no part in contrastive-only training
    }


def scl_arguments(config: RecipeConfig, paths: RunPaths) -> dict[str, Any]:
    """Stage scl: Pair Selection batches, selective contrastive loss and the translation loss."""
    scl = config.scl
    smoothing = config.translate.label_smoothing if scl.label_smoothing is None else scl.label_smoothing
    return {
        "batch_sampler": scl.batch_sampler,
        "contrastive_loss": scl.contrastive_loss,
        "contrastive_weight": scl.contrastive_weight,
        "translation_weight": scl.translation_weight,
        "label_smoothing_factor": smoothing,
        "curriculum_schedule": scl.schedule,
        "curriculum_log_base": scl.log_base,
        "avoid_duplicate_texts": scl.avoid_duplicate_texts,
        "pair_selection_scores": str(paths.pair_scores),
    }


def translate_arguments(config: RecipeConfig, num_train: int, num_processes: int) -> dict[str, Any]:
    """Stage translate: cross-entropy only, evaluated (and kept at its best) by dev BLEU-4."""
    section = config.translate
    steps_per_epoch = optimizer_steps_per_epoch(
        num_train, section.batch_size, section.gradient_accumulation_steps, num_processes
    )
    eval_steps = max(1, round(steps_per_epoch * section.eval_every_epochs))
    return {
        "label_smoothing_factor": section.label_smoothing,
        "predict_with_generate": True,
        "eval_strategy": "steps",
        "eval_steps": eval_steps,
        "save_strategy": "steps",
        "save_steps": eval_steps,
        "load_best_model_at_end": True,
        "metric_for_best_model": "bleu4",
        "greater_is_better": True,
    }
