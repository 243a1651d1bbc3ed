"""Setting up a recipe run, before any training: check everything that can be checked without work,
record the config (or refuse to resume a run of another one, or start over when asked), and load
or generate the corpus.

A run directory is locked to its config only once it holds work: a finished stage (``DONE``) or a
checkpoint. A directory whose runs all failed before that starts over with the new config.
"""

from __future__ import annotations

import inspect
import shutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from accelerate import PartialState
from datasets import DatasetDict

from datasets_scripts import (
    load_csl_daily,
    load_phoenix2014t,
    load_sign_corpus,
    make_gloss_rendered_corpus,
    make_synthetic_corpus,
)
from datasets_scripts.frame_features import (
    FrameFeaturesError,
    FrameFeaturesInfo,
    load_frame_features,
    read_frame_features_info,
)
from datasets_scripts.synthetic import check_synthetic_options, make_signers

from ..method.atomic_files import atomic_folder, write_text_atomically
from ..training.progress import progress_enabled
from .recipe_config import (
    ConfigError,
    CorpusSection,
    RecipeConfig,
    build_dataclass,
    check_corpus_path,
    check_value,
    validate_config,
)
from .run_paths import RunPaths

Report = Callable[[str], None]
STAGE_NAMES = ("reference", "scl", "translate")  # trainers.training.stages.STAGES, in run order
# make_synthetic_corpus arguments that come from corpus fields (or the run), not synthetic_options.
SYNTHETIC_SECTION_ARGUMENTS = {"out_dir", "seed", "size", "video_format", "manifest_format", "show_progress"}
# Sections every recorded recipe.yaml holds: how --overwrite recognises a run directory.
RUN_SECTIONS = {"corpus", "model", "reference", "scl", "translate"}


# --- checks before any work -------------------------------------------------------------------
def check_before_work(config: RecipeConfig, where: str = "recipe config") -> None:
    """Every value, the corpus path and the synthetic corpus options; a ConfigError names the key."""
    validate_config(config, where)
    if config.video.features is not None:
        features_info(config, where)
    elif config.corpus.kind == "synthetic":
        synthetic_options(config.corpus, where)
    else:
        check_corpus_path(config.corpus.kind, config.corpus.path, f"{where}: corpus.path")


def features_info(config: RecipeConfig, where: str = "recipe config") -> FrameFeaturesInfo:
    """The ``features.json`` of ``video.features``, checked against the video section: features
    extracted from pixels must come from the transform (``image_size``, ``resize``) that the saved
    model will apply to raw video."""
    key = f"{where}: video.features"
    try:
        info = read_frame_features_info(config.video.features)
    except FrameFeaturesError as error:
        raise ConfigError(f"{key}: {error}") from None
    transform = info.transform
    video = config.video
    if transform is not None and (transform.get("size"), transform.get("resize")) != (
        video.image_size,
        video.resize,
    ):
        raise ConfigError(
            f"{key}: the features were extracted at size {transform.get('size')}, resize "
            f"{transform.get('resize')}; video.image_size {video.image_size} and video.resize {video.resize} "
            "must match, since the saved model applies them to raw video"
        )
    return info


def metric_language(config: RecipeConfig) -> str:
    """The language BLEU / ROUGE-L tokenise for: the features corpus's (``video.features``), else
    ``corpus.language``."""
    if config.video.features is not None:
        return features_info(config).language
    return config.corpus.language


def synthetic_options(section: CorpusSection, where: str = "recipe config") -> dict[str, Any]:
    """``corpus.synthetic_options``, checked against :func:`make_synthetic_corpus`: its keyword
    names, the types of their annotations and the generator's own range checks."""
    key = f"{where}: corpus.synthetic_options"
    parameters = inspect.signature(make_synthetic_corpus).parameters
    accepted = set(parameters) - SYNTHETIC_SECTION_ARGUMENTS
    unknown = sorted(set(section.synthetic_options) - accepted)
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {unknown}; known keys are {sorted(accepted)}")
    hints = typing.get_type_hints(make_synthetic_corpus)
    options = {
        name: check_value(hints[name], value, where, f"corpus.synthetic_options.{name}")
        for name, value in section.synthetic_options.items()
    }
    values = {name: parameter.default for name, parameter in parameters.items() if name in accepted}
    values.update(options)
    try:
        # The generator's own checks, run before anything is written.
        check_synthetic_options(
            values["frame_size"],
            section.synthetic_format,
            "csv",
            values["num_signers"],
            values["num_unseen_signers"],
            {
                name: values[name]
                for name in ("repeat_fraction", "near_duplicate_fraction", "unseen_signer_fraction")
            },
        )
        make_signers(values["num_signers"], section.synthetic_seed)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
    return options


# --- the run directory ------------------------------------------------------------------------
def check_or_record_config(
    config: RecipeConfig, paths: RunPaths, overwrite: bool = False, report: Report = print
) -> None:
    """Record the config of a new run, resume a run of the same config, refuse one of another.

    ``overwrite`` deletes the directory's run first. A directory recorded with another config that
    holds no work (no finished stage, no checkpoint) starts over with this config and says so.
    """
    text = yaml.safe_dump(config.to_dict(), sort_keys=True)
    if overwrite and clear_run_directory(paths):
        report(f"--overwrite: deleted the previous run in {paths.root}")
    elif paths.config.exists() and not records_config(paths, config):
        work = work_done(paths) or (None if is_run_directory(paths) else "a recipe.yaml of no recipe run")
        if work:
            raise ConfigError(
                f"{paths.root} holds a run started with a different config ({paths.config}) that has "
                f"{work}: run with the same config to resume it, or pass --overwrite (overwrite=True) "
                "to delete it and start over, or choose another output directory"
            )
        report(
            f"{paths.root} holds a run of another config that never finished a stage or saved a "
            "checkpoint: deleted it, starting over with this config"
        )
        clear_run_directory(paths)
    if paths.config.exists():
        return
    write_text_atomically(paths.config, text, "config")


def records_config(paths: RunPaths, config: RecipeConfig) -> bool:
    """Whether the run's recipe.yaml holds ``config``.

    Read as a config of this release: a key that a later release added (with its default) does
    not make a run unresumable; a recorded value that differs, or a key this release lacks, does.
    """
    try:
        recorded = build_dataclass(RecipeConfig, yaml.safe_load(paths.config.read_text(encoding="utf-8")), "")
    except (ConfigError, yaml.YAMLError):
        return False
    return recorded.to_dict() == config.to_dict()


def work_done(paths: RunPaths) -> str | None:
    """What a run directory holds that a restart would lose, in words; None when nothing."""
    finished = [stage for stage in STAGE_NAMES if (paths.stage(stage) / "DONE").exists()]
    if finished:
        return f"finished stage(s) {', '.join(finished)}"
    checkpoints = [path for stage in STAGE_NAMES for path in sorted(paths.stage(stage).glob("checkpoint-*"))]
    if checkpoints:
        return f"checkpoint(s), e.g. {checkpoints[0]}"
    return None


def is_run_directory(paths: RunPaths) -> bool:
    """Whether ``paths.root`` holds a recipe.yaml that a recipe run wrote."""
    try:
        recorded = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(recorded, dict) and set(recorded) >= RUN_SECTIONS


def clear_run_directory(paths: RunPaths) -> bool:
    """Delete everything inside a run directory (whether there was anything to delete); refuse a
    folder that is not one, deleting nothing."""
    if not paths.root.exists() or not any(paths.root.iterdir()):
        return False
    if not is_run_directory(paths):
        raise ConfigError(
            f"--overwrite: {paths.root} is not a run directory (it has no recipe.yaml of a recipe run); "
            "nothing was deleted: choose another output directory"
        )
    for entry in paths.root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return True


# --- the corpus -------------------------------------------------------------------------------
def load_training_corpus(
    config: RecipeConfig, paths: RunPaths, state: PartialState, report: Report
) -> DatasetDict:
    """What the recipe trains on: the frame-features corpus of ``video.features`` (names, texts and
    per-frame features; the corpus section is then not read), else :func:`load_corpus`."""
    if config.video.features is None:
        return load_corpus(config, paths, state, report)
    corpus, info = load_frame_features(config.video.features)
    missing = {"train", "validation", "test"} - set(corpus)
    if missing:
        raise ConfigError(f"video.features: {config.video.features} has no {sorted(missing)} split(s)")
    report(
        f"frame features ({info.feature_dim} per frame, backbone {info.backbone.get('source')}): "
        + ", ".join(f"{split} {len(corpus[split])}" for split in ("train", "validation", "test"))
    )
    return corpus


def load_corpus(config: RecipeConfig, paths: RunPaths, state: PartialState, report: Report) -> DatasetDict:
    """The configured corpus as train / validation / test splits."""
    section = config.corpus
    if section.kind == "synthetic":
        manifest = paths.corpus / "manifest.csv"
        with state.main_process_first():
            if not manifest.exists():
                report(f"generating the synthetic corpus ({section.synthetic_size}) in {paths.corpus}")
                with atomic_folder(paths.corpus, "corpus") as folder:
                    generate_synthetic_corpus(section, folder)
            corpus = load_sign_corpus(manifest, on_error=section.on_error)
    elif section.path is None:
        raise ConfigError(f"corpus.path is required for corpus.kind={section.kind!r}")
    elif section.kind == "phoenix2014t":
        corpus = load_phoenix2014t(section.path, on_error=section.on_error)
    elif section.kind == "csl_daily":
        corpus = load_csl_daily(section.path, on_error=section.on_error)
    elif section.kind == "gloss_rendered":
        corpus = load_gloss_rendered_corpus(section, paths, state, report)
    else:
        corpus = load_sign_corpus(section.path, on_error=section.on_error, **section.manifest_options)
    missing = {"train", "validation", "test"} - set(corpus)
    if missing:
        raise ConfigError(
            f"the corpus has no {sorted(missing)} split(s); the recipe needs train, validation and test"
        )
    report(
        "corpus: " + ", ".join(f"{split} {len(corpus[split])}" for split in ("train", "validation", "test"))
    )
    return corpus


def load_gloss_rendered_corpus(
    section: CorpusSection, paths: RunPaths, state: PartialState, report: Report
) -> DatasetDict:
    """Render the gloss annotations at ``corpus.path`` into the run directory (once) and load them."""
    manifest = paths.corpus / "manifest.csv"
    with state.main_process_first():
        if not manifest.exists():
            report(f"rendering the gloss annotations of {section.path} in {paths.corpus}")
            options = {
                "seed": section.synthetic_seed,
                "language": section.language,
                **section.rendering_options,
            }
            try:
                with atomic_folder(paths.corpus, "corpus") as folder:
                    make_gloss_rendered_corpus(
                        section.path,
                        folder,
                        on_error=section.on_error,
                        show_progress=progress_enabled(),
                        **options,
                    )
            except TypeError as error:
                raise ConfigError(f"corpus.rendering_options: {error}") from None
        return load_sign_corpus(manifest, on_error=section.on_error)


def generate_synthetic_corpus(section: CorpusSection, folder: Path) -> Path:
    """Write the synthetic corpus the ``corpus`` section describes into ``folder``; its manifest path."""
    return make_synthetic_corpus(
        folder,
        seed=section.synthetic_seed,
        size=section.synthetic_size,
        video_format=section.synthetic_format,
        show_progress=progress_enabled(),
        **synthetic_options(section),
    )
