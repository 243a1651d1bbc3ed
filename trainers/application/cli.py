"""The `scl-slt` command line. It parses arguments and calls the library; nothing more.

Commands: ``demo``, ``train`` (the recipe), ``plan`` (memory and time of a config's stages),
``prepare`` (corpus → parquet), ``extract-features`` (a frozen backbone's per-frame features),
``evaluate`` (BLEU / ROUGE-L of a saved model), ``translate`` (videos → text), ``analyze``
(trajectory report of snapshots), ``app`` (the model's web page) and ``push`` (model, corpus and
Space to the Hub).

A user mistake (missing file, unknown config key, bad value, bad corpus, an upload that cannot
happen) ends with one clear line on stderr and exit code 2, without a traceback; so does a damaged
source (a cut-short or empty snapshot, model weight, config or tokenizer file), named with its remedy.

Only light modules are imported at the top (the parser, the config's checks): ``--help``, argument
errors and config errors answer in a fraction of a second; each command imports what it uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from .cli_parser import CORPUS_KINDS, build_parser
from .recipe_config import ConfigError, RecipeConfig, check_corpus_path, corpus_path_help

USER_ERROR_EXIT = 2
ROUNDED_DIGITS = 2  # of the printed scores: float32 noise (86.00000143) is not a digit
# The target-text language of each corpus kind that has one (a manifest may hold any).
KIND_LANGUAGES = {"synthetic": "en", "phoenix2014t": "de", "csl_daily": "zh"}


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    """``["scl.epochs=10"]`` → ``{"scl.epochs": 10}``."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def run_command(args: argparse.Namespace) -> int | None:
    """Run the command; its exit status where it has one (``plan``)."""
    # Imported on use: `scl-slt --help` should not wait for the training stack.
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.output_dir, quick=args.quick, overwrite=args.overwrite, quiet=args.quiet)
        return None
    if args.command == "train":
        run_train(args)
        return None
    return COMMANDS[args.command](args)


def run_train(args: argparse.Namespace) -> None:
    """Check the config (values first, in milliseconds; then the corpus), then run the recipe."""
    config = RecipeConfig.from_yaml(args.config, parse_overrides(args.set))
    if config.corpus.kind != "synthetic":
        check_corpus_path(config.corpus.kind, config.corpus.path, f"{args.config}: corpus.path")
    from .recipe import run_recipe
    from .run_setup import check_before_work

    check_before_work(config, args.config)  # also the synthetic corpus options
    from .plan import check_run_fits

    check_run_fits(config, args.config, Path(args.output_dir))  # prints the plan; refuses what cannot fit
    from ..training.progress import progress_display

    with progress_display(enabled=False if args.quiet else None):
        run_recipe(config, Path(args.output_dir), stop_after=args.stop_after, overwrite=args.overwrite)


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan of a config; exit status 1 when the run does not fit the GPU memory."""
    config = RecipeConfig.from_yaml(args.config, parse_overrides(args.set))
    from .plan import format_plan, make_plan
    from .plan_inputs import plan_device

    device = plan_device(config.precision, args.gpus, args.gpu_memory, args.device_name)
    plan = make_plan(config, device, args.config)
    print(format_plan(plan))
    return 1 if plan.fits is False else 0


# --- prepare ----------------------------------------------------------------------------------
def load_named_corpus(
    kind: str,
    path: str | Path,
    on_error: str = "raise",
    size: str = "tiny",
    generate: bool = False,
    key: str = "corpus path",
) -> Any:
    """The corpus of ``kind`` at ``path`` as a ``DatasetDict``; ``generate`` writes a synthetic
    corpus of ``size`` there when it holds none. ``key`` names the argument in errors."""
    check_corpus_argument(kind, path, generate, key)
    from datasets_scripts import load_csl_daily, load_phoenix2014t, load_sign_corpus, make_synthetic_corpus

    path = Path(path)
    if kind == "synthetic":
        manifest = path / "manifest.csv"
        if not manifest.exists():
            print(f"generating a {size} synthetic corpus in {path}", file=sys.stderr)
            manifest = make_synthetic_corpus(path, size=size)
        return load_sign_corpus(manifest, on_error=on_error)
    loaders = {"phoenix2014t": load_phoenix2014t, "csl_daily": load_csl_daily, "manifest": load_sign_corpus}
    if kind not in loaders:
        raise ValueError(f"unknown corpus kind {kind!r}; choose one of {', '.join(CORPUS_KINDS)}")
    return loaders[kind](path, on_error=on_error)


def check_corpus_argument(kind: str, path: str | Path, generate: bool, key: str) -> None:
    """A ConfigError unless ``path`` holds a corpus of ``kind`` (or ``generate`` makes a synthetic
    one there). Light: the commands call it before they import the corpus loaders."""
    path = Path(path)
    if generate and kind != "synthetic":
        raise ConfigError(f"--generate makes a synthetic corpus; it does not apply to corpus kind {kind}")
    if kind != "synthetic":
        check_corpus_path(kind, path, key)
    elif not (path / "manifest.csv").exists() and not generate:
        problem = "does not exist" if not path.exists() else "holds no manifest.csv"
        raise ConfigError(
            f"{key}: {path} {problem}; expected {corpus_path_help(kind)}, or pass --generate to "
            "generate one there"
        )


def run_prepare(args: argparse.Namespace) -> None:
    check_corpus_argument(args.kind, args.path, args.generate, "PATH")
    from ..publishing.hub import prepare_dataset_upload

    corpus = load_named_corpus(args.kind, args.path, args.on_error, args.size, args.generate, "PATH")
    folder = prepare_dataset_upload(corpus, args.output_dir)
    counts = ", ".join(f"{split} {len(corpus[split])}" for split in corpus)
    print(f"wrote {folder} ({counts}); load it with datasets.load_dataset({str(folder)!r})")


# --- extract-features -------------------------------------------------------------------------
def run_extract_features(args: argparse.Namespace) -> None:
    config = RecipeConfig.from_yaml(args.config, parse_overrides(args.set))
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be 0 or more, got {args.num_workers}")
    if config.corpus.kind != "synthetic":
        check_corpus_path(config.corpus.kind, config.corpus.path, f"{args.config}: corpus.path")
    from ..training.progress import progress_display
    from .feature_extraction import run_feature_extraction

    with progress_display(enabled=False if args.quiet else None):
        run_feature_extraction(
            replace_features(config, None),
            args.output_dir,
            model_dir=args.model,
            where=args.config,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            num_workers=args.num_workers,
        )


def replace_features(config: RecipeConfig, features: str | None) -> RecipeConfig:
    """``config`` with ``video.features`` set to ``features`` (extraction reads the video corpus)."""
    return dataclasses.replace(config, video=dataclasses.replace(config.video, features=features))


# --- evaluate ---------------------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace) -> None:
    require_model_dir(args.model_dir)
    check_corpus_argument(args.corpus_kind, args.corpus_path, args.generate, "--corpus-path")
    from ..method.damaged_files import check_model_folder_files
    from .evaluation import write_predictions

    check_model_folder_files(args.model_dir)  # before the corpus loads: a damaged file names itself

    corpus = load_named_corpus(
        args.corpus_kind, args.corpus_path, args.on_error, args.size, args.generate, "--corpus-path"
    )
    if args.split not in corpus:
        raise ValueError(f"the corpus has no split {args.split!r}; it has {', '.join(corpus)}")
    dataset = corpus[args.split]
    metrics, hypotheses = evaluate_model(args, dataset)
    print(json.dumps(rounded(metrics), indent=2))
    if args.output:
        write_predictions(Path(args.output), dataset, hypotheses)
    if args.metrics_output:
        write_text(Path(args.metrics_output), json.dumps(metrics, indent=2) + "\n")


def evaluate_model(args: argparse.Namespace, dataset: Any) -> tuple[dict[str, float], list[str]]:
    """BLEU-1..4 / ROUGE-L and hypotheses, with the model's own evaluation transform."""
    from transformers import AutoTokenizer

    from datasets_scripts import SignTranslationCollator
    from modeling_scl_slt import SclSltForSignTranslation
    from modeling_scl_slt.pipeline_scl_slt import evaluation_transform

    from .evaluation import evaluate_split

    model = SclSltForSignTranslation.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    apply_generation_options(model, args.num_beams, args.max_new_tokens)
    collator = SignTranslationCollator(
        tokenizer,
        evaluation_transform(model.config.video_preprocessing),
        min_frames=model.config.temporal_downsampling,
    )
    language = args.language or metric_language(args.corpus_kind, model.config)
    return evaluate_split(model, dataset, collator, tokenizer, language, batch_size=args.batch_size)


def apply_generation_options(model: Any, num_beams: int | None, max_new_tokens: int | None) -> None:
    """``--num-beams`` / ``--max-new-tokens`` over the model's generation config. Without either,
    the length is what ``translate`` (the pipeline) would use: the config's, else its default."""
    from modeling_scl_slt.pipeline_scl_slt import SignLanguageTranslationPipeline

    if max_new_tokens is None:  # the pipeline's rule reads only .model
        length = SignLanguageTranslationPipeline.default_length(SimpleNamespace(model=model), {})
        max_new_tokens = length.get("max_new_tokens")
    generation = model.generation_config
    if num_beams is not None:
        generation.num_beams = num_beams
    if max_new_tokens is not None:
        generation.max_new_tokens, generation.max_length = max_new_tokens, None


def metric_language(kind: str, model_config: Any) -> str:
    """The language that BLEU / ROUGE-L tokenise for: the corpus kind's, else the model's tgt_lang.

    A manifest's ``language`` column is not used: it may name the sign language (How2Sign: ase).
    """
    language = KIND_LANGUAGES.get(kind) or (getattr(model_config, "tgt_lang", None) or "de").split("_")[0]
    print(f"scoring as language {language!r} (--language sets another)", file=sys.stderr)
    return language


def rounded(metrics: Any, digits: int = ROUNDED_DIGITS) -> Any:
    """``metrics`` with every float rounded (nested mappings too): what is printed, not stored."""
    if isinstance(metrics, dict):
        return {key: rounded(value, digits) for key, value in metrics.items()}
    return round(metrics, digits) if isinstance(metrics, float) else metrics


# --- translate --------------------------------------------------------------------------------
def run_translate(args: argparse.Namespace) -> None:
    """Translate every input (in windows with --chunk-length-s or --subtitles); print, and write
    --output and --subtitles."""
    from tqdm.auto import tqdm
    from transformers import pipeline

    import modeling_scl_slt  # registers the task: no remote code for a local folder

    from ..method.damaged_files import check_model_folder_files
    from .subtitles import subtitle_format, write_subtitles

    require_model_dir(args.model_dir)
    if args.subtitles:
        subtitle_format(args.subtitles)
        if len(args.inputs) != 1:
            raise ValueError(f"--subtitles writes one file for one INPUT; got {len(args.inputs)} inputs")
    for item in args.inputs:
        if not Path(item).exists():
            raise FileNotFoundError(f"input {item} does not exist: expected a video file or a frame folder")
    if args.stride_length_s is not None and args.chunk_length_s is None and not args.subtitles:
        raise ValueError("--stride-length-s needs --chunk-length-s (the window length in seconds)")
    check_model_folder_files(args.model_dir)
    translator = pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(args.model_dir))
    options: dict[str, Any] = {
        key: value
        for key, value in (
            ("num_beams", args.num_beams),
            ("max_new_tokens", args.max_new_tokens),
            ("fps", args.fps),
        )
        if value is not None
    }
    chunk_length_s = args.chunk_length_s
    if chunk_length_s is None and args.subtitles:  # the longest window the model reads
        chunk_length_s = translator.max_frames / translator.frame_rate
    windowed = chunk_length_s is not None
    if windowed:
        options.update(
            chunk_length_s=chunk_length_s,
            stride_length_s=args.stride_length_s,
            cut_at_pauses=not args.fixed_windows,
            return_timestamps=True,
        )
    records = []
    with tqdm(total=len(args.inputs), desc="translating", unit="video") as progress:
        for chunk in chunks(args.inputs, args.batch_size):  # windows of these inputs share batches
            for item, windows in zip(
                chunk, translator(list(chunk), batch_size=args.batch_size, **options), strict=True
            ):
                records.append(translation_record(item, windows, windowed))
                for line in translation_lines(records[-1]):
                    progress.write(line, file=sys.stdout)
            progress.update(len(chunk))
    if args.subtitles:
        cues = [
            {"translation_text": w["translation"], "timestamp": (w["start"], w["end"])}
            for w in records[0]["windows"]
        ]
        path = write_subtitles(args.subtitles, cues)
        print(f"wrote {len(cues)} subtitle cue(s) to {path}", file=sys.stderr)
    if args.output:
        write_text(Path(args.output), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def translation_record(item: str, windows: list[dict[str, Any]], windowed: bool) -> dict[str, Any]:
    """What --output holds for one input: its translation, and its windows when translated in windows."""
    record: dict[str, Any] = {"input": item, "translation": " ".join(w["translation_text"] for w in windows)}
    if windowed:
        record["windows"] = [
            {"start": w["timestamp"][0], "end": w["timestamp"][1], "translation": w["translation_text"]}
            for w in windows
        ]
    return record


def translation_lines(record: dict[str, Any]) -> list[str]:
    """The printed lines of one input: ``input<TAB>translation``, or one ``input<TAB>START-END<TAB>
    translation`` line per window."""
    if "windows" not in record:
        return [f"{record['input']}\t{record['translation']}"]
    return [
        f"{record['input']}\t{w['start']:.2f}-{w['end']:.2f}\t{w['translation']}" for w in record["windows"]
    ]


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- analyze ----------------------------------------------------------------------------------
def run_analyze(args: argparse.Namespace) -> None:
    from ..method.damaged_files import DamagedFileError
    from ..method.snapshots import load_snapshot_series
    from ..method.trajectories import analyze_trajectories, write_trajectory_report

    if not Path(args.snapshot_dir).is_dir():
        raise FileNotFoundError(f"snapshot folder {args.snapshot_dir} does not exist")
    try:
        snapshots = load_snapshot_series(args.snapshot_dir)
    except DamagedFileError as error:
        raise error.with_remedy(
            f"move it out of {args.snapshot_dir} to analyze the other snapshots, or take the snapshots "
            "again by running the reference stage again (only the run a snapshot records can make it)"
        ) from None
    if args.texts_from:
        texts = snapshot_texts(snapshots[0].sample_ids, Path(args.texts_from))
    else:
        texts = None
        print("no --texts-from: identical-text pairs (false negatives) are NOT excluded", file=sys.stderr)
    report = analyze_trajectories(snapshots, texts=texts, seed=args.seed)
    json_path, figure_path = write_trajectory_report(report, args.output_dir)
    shares = ", ".join(f"{name} {share:.1%}" for name, share in report.shares.items())
    print(f"{report.num_pairs} negative pairs: {shares}; wrote {json_path} and {figure_path}")


def snapshot_texts(sample_ids: Sequence[str | int], source: Path) -> list[str]:
    """The target text of every snapshot sample, from a manifest or a recipe run directory.

    Names are looked up in every split; integer ids index the training split.
    """
    corpus = (
        corpus_of_run(source)
        if source.is_dir()
        else load_named_corpus("manifest", source, key="--texts-from")
    )
    if all(isinstance(sample, int) for sample in sample_ids):
        train = corpus["train"]["text"]
        if max(sample_ids) >= len(train):
            raise ValueError(f"snapshot sample ids go up to {max(sample_ids)}; {source} has {len(train)}")
        return [train[index] for index in sample_ids]
    texts = {
        name: text
        for split in corpus.values()
        for name, text in zip(split["name"], split["text"], strict=True)
    }
    missing = [sample for sample in sample_ids if sample not in texts]
    if missing:
        raise ValueError(f"{len(missing)} snapshot sample(s) are not in {source}, e.g. {missing[0]!r}")
    return [texts[sample] for sample in sample_ids]


def corpus_of_run(run_dir: Path) -> Any:
    """The corpus a recipe run was trained on, read from its ``recipe.yaml``."""
    from .run_paths import RunPaths

    paths = RunPaths(run_dir)
    if not paths.config.is_file():
        raise FileNotFoundError(
            f"{paths.config} is missing: --texts-from needs a manifest or a run directory"
        )
    section = RecipeConfig.from_yaml(paths.config).corpus
    from datasets_scripts import load_sign_corpus

    if section.kind == "synthetic":
        manifest = paths.corpus / "manifest.csv"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} is missing: the run's synthetic corpus is gone")
        return load_sign_corpus(manifest, on_error=section.on_error)
    if section.kind == "manifest":
        return load_sign_corpus(section.path, on_error=section.on_error, **section.manifest_options)
    return load_named_corpus(section.kind, section.path, section.on_error, key=f"{paths.config}: corpus.path")


# --- app --------------------------------------------------------------------------------------
class MissingExtraError(RuntimeError):
    """An optional extra that the command needs is not installed."""


def run_app(args: argparse.Namespace) -> None:
    """Serve the model's web page until Ctrl+C."""
    require_model_dir(args.model_dir)
    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError("the web page needs Gradio, an optional extra: pip install 'scl-slt[app]'")
    from transformers import pipeline

    import modeling_scl_slt  # registers the task: no remote code for a local folder

    from ..method.damaged_files import check_model_folder_files
    from .web_page import ModelFacts, TranslationPage

    check_model_folder_files(args.model_dir)
    translator = pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(args.model_dir))
    page = TranslationPage(translator, ModelFacts.from_model_folder(args.model_dir, translator))
    try:
        page.launch(host=args.host, port=args.port)
    except OSError as error:  # the port is taken, or the address is not this machine's
        reason = " ".join(str(error).split())
        raise ValueError(
            f"cannot serve on {args.host}:{args.port or 'a free port'}: {reason} (choose another --port)"
        ) from None


# --- push -------------------------------------------------------------------------------------
def run_push(args: argparse.Namespace) -> None:
    if args.dataset and not args.dataset_repo_id:
        raise ValueError("--dataset needs --dataset-repo-id USER/NAME")
    if args.dataset:
        check_corpus_argument(*args.dataset, args.generate, "--dataset")
    from ..publishing.hub import (
        check_model_folder,
        check_online,
        prepare_dataset_upload,
        prepare_model_upload,
        upload_folder,
    )

    check_model_folder(Path(args.model_dir))  # a missing or damaged file is found offline too
    check_online(f"push to {args.repo_id!r}")  # before the (possibly long) preparation
    with tempfile.TemporaryDirectory(prefix="scl-slt-push-") as scratch:
        staging = Path(args.staging_dir or scratch)
        model_folder = prepare_model_upload(args.model_dir, staging / "model", repo_id=args.repo_id)
        uploads = [(model_folder, args.repo_id, "model")]
        if args.space_repo_id:  # prepared before any upload: a missing Gradio stops the push early
            from ..publishing.space import prepare_space_upload

            space = prepare_space_upload(
                args.repo_id, staging / "space", title=args.space_repo_id.split("/")[-1]
            )
            uploads.append((space, args.space_repo_id, "space"))
        if args.dataset:
            corpus = load_named_corpus(*args.dataset, args.on_error, args.size, args.generate, "--dataset")
            uploads.append(
                (prepare_dataset_upload(corpus, staging / "dataset"), args.dataset_repo_id, "dataset")
            )
        for folder, repo_id, repo_type in uploads:
            url = upload_folder(folder, repo_id, repo_type=repo_type, private=args.private, token=args.token)
            print(f"uploaded {folder} to {url}")


# --- shared -----------------------------------------------------------------------------------
def require_model_dir(model_dir: str | Path) -> None:
    """Raise a FileNotFoundError unless ``model_dir`` is a saved model folder."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{config} is missing: {model_dir} is not a saved model folder")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) atomically, creating parent folders."""
    from ..method.atomic_files import write_text_atomically

    write_text_atomically(path, text, "cli_output")


COMMANDS = {
    "plan": run_plan,
    "prepare": run_prepare,
    "extract-features": run_extract_features,
    "evaluate": run_evaluate,
    "translate": run_translate,
    "analyze": run_analyze,
    "app": run_app,
    "push": run_push,
}


def user_error_types() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake. The corpus and Hub errors are looked up only where
    their (heavy) module was loaded: a module that was never imported raised nothing."""
    found: list[type[Exception]] = [
        ConfigError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        MissingExtraError,
    ]
    for module, name in (("datasets_scripts.corpus", "CorpusError"), ("trainers.publishing.hub", "HubError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        status = run_command(args)
    except Exception as error:
        if not isinstance(error, user_error_types()):
            raise
        # A corpus error lists every bad sample on its own line: keep them.
        print(f"scl-slt {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    if "torch" in sys.modules:  # a command that never loaded torch has no process group
        from .recipe import close_process_group

        close_process_group()
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
