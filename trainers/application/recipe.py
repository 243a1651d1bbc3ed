"""The end-to-end recipe: corpus → reference run → Pair Selection → stage scl → stage translate → test.

One call, :func:`run_recipe`, runs every step from one :class:`RecipeConfig` and resumes where
it stopped: a finished step leaves its outputs and a ``DONE`` file; an unfinished training stage
resumes from its last checkpoint. Run directory layout (documented in the README):

    run/
      recipe.yaml                 the config this run was started with (a resume must match it)
      tokenizer/                  trained on the training texts, or the configured one (trimmed to them)
      initial/                    the initial model (reference and scl both start from it)
      reference/                  stage 0 checkpoints (complete: checkpoint_complete.json), model/,
                                  trainer_state.json (the stage's whole log history), DONE
      snapshots/                  reference snapshots (fp16 safetensors, one per snapshot)
      trajectories.json, .png     trajectory analysis of the reference run
      pair_scores.safetensors     Pair Selection scores
      scl/                        stage 1 checkpoints, model/, DONE (dev retrieval metrics)
      translate/                  stage 2 checkpoints, model/ (best on dev BLEU-4), DONE
      predictions/{validation,test}.jsonl   hypotheses and references of the final model
      metrics.json                dev and test BLEU-1..4 and ROUGE-L (+ dev retrieval after scl)
      model/                      the final model with its tokenizer and model card (README.md)

With ``video.features`` every stage trains on a frame-features corpus (``scl-slt extract-features``)
instead of pixels: the backbone is frozen and never runs, the initial model's backbone must be the
one that made the features (or the features are a synthetic twin's), and the saved models keep
the backbone, so they translate raw video.

Under ``accelerate launch`` every process runs this function; files are written by the main
process and the others wait for them. Every file and folder is written atomically
(:mod:`trainers.method.atomic_files`), so a run killed at any instant resumes.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import PartialState
from datasets import DatasetDict
from peft import PeftModel
from transformers import AutoTokenizer, PreTrainedTokenizerBase, set_seed
from transformers.trainer_callback import PrinterCallback

from datasets_scripts import SignTranslationCollator
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation, VideoTransform

from ..method.atomic_files import atomic_file, atomic_folder, write_text_atomically
from ..method.damaged_files import (
    DamagedFileError,
    check_model_folder_files,
    load_json,
    read_safetensors_metadata,
)
from ..method.pair_selection import compute_pair_scores, save_pair_scores
from ..method.similarity_series import RowShare, SnapshotSimilaritySeries
from ..method.snapshots import Snapshot, load_snapshot_series
from ..method.trajectories import analyze_trajectories, write_trajectory_report
from ..publishing.model_card import write_model_card
from ..training.checkpoints import TRAINER_STATE, last_complete_checkpoint
from ..training.lora import apply_lora, paper_lora_config
from ..training.progress import StageProgressCallback, format_duration
from ..training.stages import STAGES, get_stage
from ..training.trainer import SclSltTrainer
from .evaluation import (
    evaluate_split,
    set_generation_defaults,
    set_trainer_generation_defaults,
    write_predictions,
)
from .feature_extraction import check_features_backbone
from .recipe_config import ConfigError, CorpusSection, RecipeConfig
from .run_paths import RunPaths
from .run_setup import (
    Report,
    check_before_work,
    check_or_record_config,
    features_info,
    load_training_corpus,
    metric_language,
)
from .stage_arguments import device_arguments, resolved_channels_last, stage_arguments
from .tokenization import config_for_tokenizer, train_tokenizer
from .vocabulary import trim_vocabulary

# Frames per second of each corpus kind's clips (gloss_rendered: before its frame_step; manifest:
# the assumption for videos whose corpus names none).
KIND_FRAME_RATES = {
    "synthetic": 25.0,
    "phoenix2014t": 25.0,
    "csl_daily": 30.0,
    "gloss_rendered": 25.0,
    "manifest": 25.0,
}

logger = logging.getLogger(__name__)


def run_recipe(
    config: RecipeConfig,
    output_dir: str | Path,
    report: Report = print,
    stop_after: Literal["reference", "scl"] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the recipe in ``output_dir``; returns the final metrics.

    ``stop_after="reference"`` stops once the reference run, its trajectory report and the Pair
    Selection scores exist (returns ``{}``); ``"scl"`` stops after stage scl (returns its dev
    retrieval metrics). A later call without ``stop_after`` resumes from there. ``overwrite``
    deletes the run already in ``output_dir`` (only a run directory) and starts over. The whole
    config and the corpus path are checked before any work.
    """
    if stop_after not in (None, "reference", "scl"):
        raise ValueError(f"stop_after must be None, 'reference' or 'scl', got {stop_after!r}")
    check_before_work(config)
    state = distributed_state(config)
    if not state.is_main_process:
        report = _silent
    paths = RunPaths(Path(output_dir))
    with state.main_process_first():
        check_or_record_config(config, paths, overwrite=overwrite and state.is_main_process, report=report)
    set_seed(config.seed)
    corpus = load_training_corpus(config, paths, state, report)
    if state.is_main_process and not (paths.initial / "config.json").exists():
        prepare_initial_model(config, corpus, paths, report)
    state.wait_for_everyone()
    tokenizer, collators = run_collators(config, paths)

    reference_dir = run_stage("reference", paths.initial, config, corpus, tokenizer, collators, paths, report)
    analyse_reference_run(config, corpus, paths, report)  # every process computes a share
    state.wait_for_everyone()
    if stop_after == "reference":
        return {}
    scl_init = reference_dir if config.scl.init_from == "reference" else paths.initial
    scl_dir = run_stage("scl", scl_init, config, corpus, tokenizer, collators, paths, report)
    if stop_after == "scl":
        return json.loads((paths.stage("scl") / "DONE").read_text(encoding="utf-8"))["eval"]
    translate_dir = run_stage("translate", scl_dir, config, corpus, tokenizer, collators, paths, report)
    metrics = final_evaluation(config, corpus, tokenizer, collators, translate_dir, paths, state, report)
    return metrics


def _silent(message: str) -> None:
    """Report of the processes other than the main one."""


def distributed_state(config: RecipeConfig) -> PartialState:
    """The launch's process state; its process group waits ``distributed_timeout_minutes``.

    The first PartialState of a process creates the torch.distributed group, and this one comes
    before the Trainer's: TrainingArguments passes ``ddp_timeout`` to a PartialState of its own,
    but that finds the group made and leaves it. So this timeout holds for the whole run.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        logger.warning("the process group exists already: distributed_timeout_minutes does not apply to it")
    # Without a GPU, only cpu=True makes accelerate set up the gloo process group of a launch.
    timeout = timedelta(minutes=config.distributed_timeout_minutes)
    return PartialState(cpu=not torch.cuda.is_available(), timeout=timeout)


def close_process_group() -> None:
    """End the launch's process group once this process's work is done (no-op without one).

    Every process of a launch calls it after finishing normally: a barrier (no peer still
    communicates), the released training objects collected (DDP's reducer holds the group's
    pending work), then ``destroy_process_group``. A process that exits with the group alive can
    die in interpreter shutdown (gloo: SIGABRT, "terminate called without an active exception"),
    which fails the whole launch after its results are written. Not called after an error: a
    barrier that a failed peer never reaches would hang.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    torch.distributed.barrier()
    gc.collect()
    torch.distributed.destroy_process_group()


# --- set-up (config, run directory and corpus: run_setup) -----------------------------------
def prepare_initial_model(config: RecipeConfig, corpus: DatasetDict, paths: RunPaths, report: Report) -> None:
    """Save the run's tokenizer and initial model (both stages start from the latter)."""
    tokenizer = prepare_tokenizer(config, corpus, report)
    model = build_initial_model(config, tokenizer)
    if config.video.features is not None:
        accepted = check_features_backbone(features_info(config), model, "video.features")
        if accepted:
            report(accepted)
    if config.model.trim_vocabulary:
        before = len(tokenizer)
        trimmed = trim_vocabulary(model, tokenizer, corpus["train"]["text"])
        model, tokenizer = trimmed.model, trimmed.tokenizer
        report(f"trimmed the vocabulary to the training texts: {before} → {len(tokenizer)} tokens")
    model.config.video_preprocessing = video_preprocessing(config)
    model.config.frame_rate = corpus_frame_rate(config.corpus)
    if config.corpus.kind == "manifest" and config.corpus.frame_rate is None:
        report(
            f"the manifest's videos are taken as {model.config.frame_rate:g} fps "
            "(corpus.frame_rate sets theirs)"
        )
    with atomic_folder(paths.tokenizer, "tokenizer") as folder:
        tokenizer.save_pretrained(folder)
    with atomic_folder(paths.initial, "initial") as folder:
        model.save_pretrained(folder)


def prepare_tokenizer(config: RecipeConfig, corpus: DatasetDict, report: Report) -> PreTrainedTokenizerBase:
    """The configured tokenizer, or one trained on the training texts."""
    if config.model.tokenizer:
        return AutoTokenizer.from_pretrained(config.model.tokenizer)
    tokenizer = train_tokenizer(
        corpus["train"]["text"],
        tgt_lang=config.model.tgt_lang,
        vocab_size=config.model.vocab_size,
        model=config.model.tokenizer_model,
    )
    report(f"trained a {config.model.tokenizer_model} tokenizer with {len(tokenizer)} tokens")
    return tokenizer


def video_preprocessing(config: RecipeConfig) -> dict[str, Any]:
    """The video transform's settings, saved in the model config: the model applies them to the
    uint8 clips of the collators (training mode: random crop, and augmentation when ``augment``),
    and so does the pipeline."""
    video = config.video
    return {
        "size": video.image_size,
        "resize": video.resize,
        "max_frames": video.max_frames,
        "augment": video.augment,
    }


def corpus_frame_rate(corpus: CorpusSection) -> float:
    """Frames per second of the corpus's clips: ``corpus.frame_rate``, else the kind's own rate.

    PHOENIX-2014T and the synthetic corpus are 25 fps, CSL-Daily 30 fps, a gloss-rendered corpus
    25 fps divided by its ``frame_step``; a manifest's videos are taken as 25 fps unless set.
    """
    if corpus.frame_rate is not None:
        return float(corpus.frame_rate)
    if corpus.kind == "gloss_rendered":
        return KIND_FRAME_RATES["gloss_rendered"] / corpus.rendering_options.get("frame_step", 1)
    return KIND_FRAME_RATES.get(corpus.kind, KIND_FRAME_RATES["manifest"])


def run_collators(
    config: RecipeConfig, paths: RunPaths
) -> tuple[PreTrainedTokenizerBase, dict[str, SignTranslationCollator]]:
    """The run's tokenizer and its collators, which refuse clips too short for the initial model."""
    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer)
    min_frames = SclSltConfig.from_pretrained(paths.initial).temporal_downsampling
    return tokenizer, make_collators(config, tokenizer, min_frames)


def make_collators(
    config: RecipeConfig, tokenizer: PreTrainedTokenizerBase, min_frames: int
) -> dict[str, SignTranslationCollator]:
    """Training (random crop + augmentation) and evaluation (centre crop) collators.

    With ``video.transform_in_model`` (the default) both hand uint8 clips to the model, which
    transforms them on its device: the training mode draws crops and augmentation, the evaluation
    mode centre-crops. Their transforms then serve only batches that cannot be one uint8 tensor
    (clips of different frame sizes). ``min_frames`` is the model's
    ``config.temporal_downsampling``: shorter clips are refused.
    """
    settings = video_preprocessing(config)
    in_model = config.video.transform_in_model
    return {
        mode: SignTranslationCollator(
            tokenizer,
            VideoTransform(train=mode == "train", **settings),
            min_frames=min_frames,
            transform_in_model=in_model,
        )
        for mode in ("train", "eval")
    }


def build_initial_model(config: RecipeConfig, tokenizer: PreTrainedTokenizerBase) -> SclSltForSignTranslation:
    """A fresh model for the tokenizer, or one built from pretrained parts."""
    section = config.model
    if section.backbone or section.text_model:
        if not (section.backbone and section.text_model):
            raise ConfigError("model.backbone and model.text_model must be given together")
        language_token = tokenizer.convert_tokens_to_ids(section.tgt_lang)
        if language_token is None or language_token == tokenizer.unk_token_id:
            raise ConfigError(f"model.tgt_lang {section.tgt_lang!r} is not a token of the tokenizer")
        return SclSltForSignTranslation.from_pretrained_parts(
            backbone=section.backbone,
            text_model=section.text_model,
            tgt_lang=section.tgt_lang,
            decoder_start_token_id=language_token,
            **section.overrides,
        )
    model_config = config_for_tokenizer(section.preset, tokenizer, section.tgt_lang, **section.overrides)
    return SclSltForSignTranslation(model_config)


# --- stages -----------------------------------------------------------------------------------
def run_stage(
    stage: str,
    init_dir: Path,
    config: RecipeConfig,
    corpus: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    collators: dict[str, SignTranslationCollator],
    paths: RunPaths,
    report: Report,
) -> Path:
    """Train one stage from the model in ``init_dir``; returns the folder of its final model."""
    stage_dir = paths.stage(stage)
    model_dir = stage_dir / "model"
    if (stage_dir / "DONE").exists():
        report(f"stage {stage}: already done ({model_dir})")
        return model_dir
    spec = get_stage(stage)
    check_stage_input(init_dir, paths)
    model: Any = SclSltForSignTranslation.from_pretrained(init_dir)
    # Resolved per stage, on the machine that trains it (a resumed run may have moved).
    model.config.backbone_channels_last = resolved_channels_last(config.model.backbone_channels_last)
    model.video_encoder.apply_backbone_memory_format()
    if not spec.contrastive_loss:
        model.drop_text_branch()
    if spec.evaluates_by_generation:
        set_trainer_generation_defaults(model, config.translate.num_beams, config.translate.max_new_tokens)
    on_features = config.video.features is not None
    if on_features:  # the stored features stand for the backbone's output: it stays as it made them
        model.video_encoder.backbone.requires_grad_(False)
    if config.lora.enabled:
        lora = config.lora
        train_backbone = lora.train_backbone and not on_features
        model = apply_lora(model, paper_lora_config(lora.r, lora.alpha, lora.dropout, train_backbone))
    num_processes = PartialState().num_processes
    args = stage_arguments(stage, config, paths, len(corpus["train"]), num_processes)
    progress = StageProgressCallback(
        recipe_step_title(stage), stage, report, takes_snapshots=spec.takes_snapshots
    )
    trainer = SclSltTrainer(
        model=model,
        args=args,
        train_dataset=corpus["train"],
        eval_dataset=corpus["validation"],
        data_collator=collators["train"],
        eval_data_collator=collators["eval"],
        processing_class=tokenizer,
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log as a dict; the progress bar shows them
    state = PartialState()
    checkpoint = last_complete_checkpoint(stage_dir, report, delete_incomplete=state.is_main_process)
    state.wait_for_everyone()  # the main process deleted the incomplete ones
    number, count = recipe_step(stage)
    report(
        f"stage {stage}: {number} of {count}, {args.num_train_epochs:g} epochs"
        + (f", resuming {checkpoint}" if checkpoint else "")
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = trainer.evaluate() if spec.reports_retrieval else {}
    if trainer.is_world_process_zero():
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if spec.evaluates_by_generation:  # the saved generation config: beams and max_new_tokens only
            set_generation_defaults(trained, config.translate.num_beams, config.translate.max_new_tokens)
        with atomic_folder(model_dir, "stage_model") as folder:
            save_stage_model(trained, folder)
            tokenizer.save_pretrained(folder)
        # The whole log history (losses, every evaluation): checkpoints that held it get rotated away.
        with atomic_file(stage_dir / TRAINER_STATE, "stage_state") as temporary:
            trainer.state.save_to_json(str(temporary))
        write_text_atomically(stage_dir / "DONE", json.dumps({"eval": metrics}, indent=2), "stage_done")
    trainer.accelerator.wait_for_everyone()
    report(stage_summary(stage, progress.summary, metrics))
    return model_dir


def recipe_step(step: str) -> tuple[int, int]:
    """The position of a stage (or ``"evaluation"``) in the recipe and the recipe's count of them."""
    steps = [*STAGES, "evaluation"]
    return steps.index(step) + 1, len(steps)


def recipe_step_title(step: str) -> str:
    """``"stage 2 of 4: scl"``: the training stages in order, then the final evaluation."""
    number, count = recipe_step(step)
    return f"stage {number} of {count}: {step}"


def stage_summary(stage: str, summary: dict[str, float], metrics: dict[str, float]) -> str:
    """The line that ends a stage: its time, its training loss and (scl) dev retrieval."""
    parts = [f"stage {stage}: done"]
    if "train_runtime" in summary:
        parts[0] += f" in {format_duration(summary['train_runtime'])}"
    if "train_loss" in summary:
        parts.append(f"train loss {summary['train_loss']:.3f}")
    if metrics:
        nan = float("nan")
        parts.append(
            f"dev R@1 video→text {metrics.get('eval_video_to_text_r1', nan):.1f}, "
            f"text→video {metrics.get('eval_text_to_video_r1', nan):.1f}"
        )
    return ", ".join(parts)


def save_stage_model(model: Any, model_dir: Path) -> None:
    """Save a stage's model as a plain model folder (LoRA adapters merged into the weights)."""
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    model.save_pretrained(model_dir)


def analyse_reference_run(config: RecipeConfig, corpus: DatasetDict, paths: RunPaths, report: Report) -> None:
    """Trajectory report and Pair Selection scores from the reference snapshots.

    Every process calls this. The similarities are computed on the process's device (its GPU
    under a launch). The trajectory analysis and dense scores are split by row blocks across
    the processes (:class:`RowShare`), with the same results as one process's. Sparse scores
    are computed by the main process alone. The main process writes the files. Files that exist
    but do not read whole (a run of an older version killed while writing them) are recomputed.
    """
    state = PartialState()
    if derived_files_readable(paths, report if state.is_main_process else _silent):
        return
    snapshots = load_reference_snapshots(paths)
    if len(snapshots) < 2:
        raise ConfigError(
            f"the reference run left {len(snapshots)} snapshot(s); Pair Selection needs 2: make "
            "reference.epochs at least twice reference.snapshot_interval"
        )
    report(f"pair selection: trajectories and scores of the negative pairs of {len(snapshots)} snapshots…")
    series = SnapshotSimilaritySeries(snapshots, device=state.device)  # one device cache for both
    share = RowShare.from_process_group()
    texts = list(corpus["train"]["text"])
    trajectory = analyze_trajectories(series, texts=texts, seed=config.seed, share=share)
    selection = config.pair_selection
    scores = None
    if selection.mode == "dense" or state.is_main_process:
        scores = compute_pair_scores(
            series,
            mode=selection.mode,
            score=selection.score,
            num_candidates=selection.num_candidates,
            block_size=selection.block_size,
            share=share if selection.mode == "dense" else None,
        )
    if state.is_main_process:
        write_trajectory_report(trajectory, paths.root)
        metadata = {"mode": selection.mode, "score": selection.score}
        save_pair_scores(scores, paths.pair_scores, metadata=metadata, source=series)  # + sample ids
        shares = ", ".join(f"{name} {share:.0%}" for name, share in trajectory.shares.items())
        report(
            f"pair selection: {selection.mode} {selection.score} scores from {len(snapshots)} snapshots; "
            f"negative pairs {shares} ({paths.trajectories.name}, .png)"
        )


def derived_files_readable(paths: RunPaths, report: Report) -> bool:
    """Whether the trajectory report (JSON and figure) and the Pair Selection scores exist and
    read whole; each damaged one is reported, to be recomputed."""
    files = (paths.trajectories, paths.trajectory_figure, paths.pair_scores)
    if not all(path.is_file() for path in files):
        return False
    readable = True
    for path, read in ((paths.trajectories, load_json), (paths.pair_scores, read_safetensors_metadata)):
        try:
            read(path)
        except DamagedFileError as error:
            report(f"{error}: computing it again from the reference snapshots")
            readable = False
        except OSError as error:
            report(f"{path} is damaged ({error}): computing it again from the reference snapshots")
            readable = False
    return readable


def check_stage_input(init_dir: Path, paths: RunPaths) -> None:
    """A stage's starting model (the initial model or an earlier stage's) reads whole, or one
    ConfigError names the damaged file and the folder to delete so that the run makes it again."""
    try:
        check_model_folder_files(init_dir)
    except DamagedFileError as error:
        remake = init_dir if init_dir == paths.initial else init_dir.parent  # <stage>/model: the stage
        raise ConfigError(
            f"{error}; the run makes it again: delete {remake} and run the same command again"
        ) from None


def load_reference_snapshots(paths: RunPaths) -> list[Snapshot]:
    """The reference run's snapshots; a damaged file ends in one ConfigError naming it and the remedy.

    Snapshots are the source of the trajectory report and the Pair Selection scores: only the
    reference run itself can write them again.
    """
    try:
        return load_snapshot_series(paths.snapshots)
    except DamagedFileError as error:
        raise ConfigError(
            f"the reference snapshot {error.path} is damaged ({error.reason}); it can only be made again by "
            f"the reference run: delete {paths.stage('reference')} and {paths.snapshots} and run the "
            "same command again"
        ) from None


# --- final evaluation -------------------------------------------------------------------------
def final_evaluation(
    config: RecipeConfig,
    corpus: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    collators: dict[str, SignTranslationCollator],
    model_dir: Path,
    paths: RunPaths,
    state: PartialState,
    report: Report,
) -> dict[str, Any]:
    """Dev and test BLEU / ROUGE-L of the final model; writes metrics.json, predictions and model/.

    Runs on the main process only (a plain generation loop over each whole split, so that no
    distributed padding can duplicate samples); the other processes wait and read the result.
    """
    if state.is_main_process and not (paths.metrics.exists() and (paths.model / "config.json").exists()):
        evaluate_final_model(config, corpus, tokenizer, collators["eval"], model_dir, paths, report)
    state.wait_for_everyone()
    return json.loads(paths.metrics.read_text(encoding="utf-8"))


def evaluate_final_model(
    config: RecipeConfig,
    corpus: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    collator: SignTranslationCollator,
    model_dir: Path,
    paths: RunPaths,
    report: Report,
) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = SclSltForSignTranslation.from_pretrained(model_dir).to(device).eval()
    set_generation_defaults(model, config.evaluation.num_beams, config.evaluation.max_new_tokens)
    number, count = recipe_step("evaluation")
    report(f"evaluation: {number} of {count}, translating dev and test (beam {config.evaluation.num_beams})")
    devices = device_arguments(config)  # precision and workers with "auto" resolved
    metrics: dict[str, Any] = {}
    for split in ("validation", "test"):
        metrics[split], hypotheses = evaluate_split(
            model,
            corpus[split],
            collator,
            tokenizer,
            metric_language(config),
            batch_size=config.translate.eval_batch_size,
            num_workers=devices["dataloader_num_workers"],
            bf16=devices["bf16"],
            progress=f"{recipe_step_title('evaluation')} ({split})",
        )
        write_predictions(paths.predictions / f"{split}.jsonl", corpus[split], hypotheses)
        report(f"{split}: BLEU-4 {metrics[split]['bleu4']:.2f}  ROUGE-L {metrics[split]['rouge_l']:.2f}")
    scl_done = paths.stage("scl") / "DONE"
    if scl_done.exists():
        metrics["validation_retrieval_after_scl"] = json.loads(scl_done.read_text(encoding="utf-8"))["eval"]
    # metrics.json first: the card reads it; the model folder, card included, appears last and whole.
    write_text_atomically(paths.metrics, json.dumps(metrics, indent=2), "metrics")
    with atomic_folder(paths.model, "model") as folder:
        shutil.copytree(model_dir, folder, dirs_exist_ok=True)
        model.generation_config.save_pretrained(folder)
        write_model_card(paths.root, model_dir=folder)
