"""The `scl-slt` command line. It parses arguments and calls the library; nothing more.

Commands: ``demo``, ``train`` (the recipe), ``prepare`` (corpus → parquet), ``evaluate`` (BLEU /
ROUGE-L of a saved model), ``translate`` (videos → text), ``analyze`` (trajectory report of
snapshots) and ``push`` (model and corpus to the Hub).

A user mistake (missing file, unknown config key, bad value, bad corpus, an upload that cannot
happen) ends with one clear line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

USER_ERROR_EXIT = 2
CORPUS_KINDS = ("phoenix2014t", "csl_daily", "manifest", "synthetic")
SYNTHETIC_SIZES = ("tiny", "small", "default", "large")
CORPUS_HELP = (
    "phoenix2014t: the release folder; csl_daily: the CSL-Daily folder; manifest: a CSV/TSV/JSONL "
    "manifest; synthetic: the folder of a generated synthetic corpus (generated there when missing)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scl-slt",
        description="Selective Contrastive Learning for gloss-free Sign Language Translation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_demo, add_train, add_prepare, add_evaluate, add_translate, add_analyze, add_push):
        add(commands)
    return parser


def add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole recipe on the built-in synthetic sign language (CPU)",
        description="Generate the synthetic corpus, run reference → Pair Selection → scl → translate, "
        "print dev/test BLEU-4 and translate one test video.",
    )
    demo.add_argument("--output-dir", default="scl-slt-demo", help="run directory (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="the same path on a tiny corpus (about a minute)")


def add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="run (or resume) the recipe from a YAML config",
        description="Run reference → Pair Selection → scl → translate → test evaluation from a config "
        "(see configs/); an interrupted run resumes where it stopped.",
    )
    train.add_argument("config", help="recipe YAML file")
    train.add_argument("--output-dir", required=True, help="run directory")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set scl.epochs=10 (repeatable; VALUE is YAML)",
    )
    train.add_argument(
        "--stop-after",
        choices=("reference", "scl"),
        help="stop after the reference run (with its trajectory report and Pair Selection scores) "
        "or after stage scl; running again without it resumes from there",
    )


def add_corpus_options(command: argparse.ArgumentParser) -> None:
    """``--on-error`` and ``--size``, shared by the commands that load a corpus."""
    command.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="bad samples: stop with a list of them, or skip and report each (default: %(default)s)",
    )
    command.add_argument(
        "--size",
        choices=SYNTHETIC_SIZES,
        default="tiny",
        help="synthetic corpus only: the size generated when PATH holds none yet (default: %(default)s)",
    )


def add_prepare(commands: Any) -> None:
    prepare = commands.add_parser(
        "prepare",
        help="corpus → self-contained parquet (frames embedded), laid out as a Hub dataset",
        description="Load a corpus and write data/{split}.parquet with every frame's bytes embedded, "
        "plus a dataset card: the folder `push --dataset` uploads. It loads with "
        "datasets.load_dataset(OUTPUT_DIR).",
    )
    prepare.add_argument("kind", choices=CORPUS_KINDS, help="corpus kind")
    prepare.add_argument("path", help=CORPUS_HELP)
    prepare.add_argument("--output-dir", required=True, help="new or empty folder to write")
    add_corpus_options(prepare)


def add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU-1..4 and ROUGE-L of a saved model on a corpus split",
        description="Translate a corpus split with a saved model (preprocessing from the model's "
        "config.video_preprocessing, as in training) and score BLEU-1..4 and ROUGE-L; prints the "
        "scores as JSON.",
    )
    evaluate.add_argument("model_dir", help="saved model folder (with its tokenizer)")
    evaluate.add_argument("--corpus-kind", required=True, choices=CORPUS_KINDS, help="corpus kind")
    evaluate.add_argument("--corpus-path", required=True, help=CORPUS_HELP)
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: %(default)s)")
    evaluate.add_argument(
        "--num-beams", type=positive_int, default=4, help="beam size (default: %(default)s)"
    )
    evaluate.add_argument(
        "--max-new-tokens", type=positive_int, default=64, help="longest translation (default: %(default)s)"
    )
    evaluate.add_argument("--batch-size", type=positive_int, default=8, help="videos per batch (default: 8)")
    evaluate.add_argument(
        "--language",
        default="de",
        help="target language code: BLEU tokenisation 13a, or characters for zh (default: %(default)s)",
    )
    evaluate.add_argument("--output", help="write one JSON line per video (name, reference, hypothesis)")
    evaluate.add_argument("--metrics-output", help="also write the scores to this JSON file")
    add_corpus_options(evaluate)


def add_translate(commands: Any) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate video files or frame folders with a saved model",
        description="Translate each input through the sign-language-translation pipeline and print "
        "`input<TAB>translation` lines.",
    )
    translate.add_argument("model_dir", help="saved model folder (with its tokenizer)")
    translate.add_argument("inputs", nargs="+", metavar="INPUT", help="video file or folder of frame images")
    translate.add_argument("--batch-size", type=positive_int, default=1, help="videos per batch (default: 1)")
    translate.add_argument("--num-beams", type=positive_int, help="beam size (default: the model's)")
    translate.add_argument(
        "--max-new-tokens", type=positive_int, help="longest translation (default: the model's)"
    )
    translate.add_argument("--output", help="also write one JSON line per input (input, translation)")


def add_analyze(commands: Any) -> None:
    analyze = commands.add_parser(
        "analyze",
        help="trajectory analysis of reference-run snapshots",
        description="Classify every negative pair of the snapshots as H->L, H->H, L->H or L->L and "
        "write trajectories.json and trajectories.png. With --texts-from, pairs with identical "
        "target texts (known false negatives) are left out.",
    )
    analyze.add_argument("snapshot_dir", help="folder of snapshot files (a run's snapshots/)")
    analyze.add_argument("--output-dir", required=True, help="where trajectories.json and .png go")
    analyze.add_argument(
        "--texts-from",
        metavar="MANIFEST_OR_RUN",
        help="the texts of the snapshot samples: a corpus manifest or a recipe run directory",
    )
    analyze.add_argument("--seed", type=int, default=0, help="seed of the sampled pairs (default: 0)")


def add_push(commands: Any) -> None:
    push = commands.add_parser(
        "push",
        help="upload a model (and optionally its corpus) to the Hugging Face Hub",
        description="Assemble the model folder (weights, config, code files, tokenizer, generation "
        "config, model card) and upload it; with --dataset, also the corpus as parquet. Needs the "
        "network and a token (hf auth login or HF_TOKEN).",
    )
    push.add_argument("model_dir", help="saved model folder (a run's model/ has everything needed)")
    push.add_argument("--repo-id", required=True, help="model repository, USER/NAME")
    push.add_argument("--private", action="store_true", help="create private repositories")
    push.add_argument("--token", help="Hub token (default: the saved login or HF_TOKEN)")
    push.add_argument(
        "--dataset",
        metavar="KIND:PATH",
        type=corpus_spec,
        help="also upload this corpus, e.g. manifest:m.csv",
    )
    push.add_argument("--dataset-repo-id", help="dataset repository, USER/NAME (needed with --dataset)")
    push.add_argument(
        "--staging-dir", help="prepare the upload folders here and keep them (default: temporary)"
    )
    add_corpus_options(push)


def positive_int(value: str) -> int:
    """argparse type: an int of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def corpus_spec(value: str) -> tuple[str, str]:
    """argparse type: ``KIND:PATH`` → (kind, path)."""
    kind, separator, path = value.partition(":")
    if not separator or kind not in CORPUS_KINDS or not path:
        raise argparse.ArgumentTypeError(f"expected KIND:PATH with KIND one of {', '.join(CORPUS_KINDS)}")
    return kind, path


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    """``["scl.epochs=10"]`` → ``{"scl.epochs": 10}``."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def run_command(args: argparse.Namespace) -> None:
    # Imported on use: `scl-slt --help` should not wait for the training stack.
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.output_dir, quick=args.quick)
    elif args.command == "train":
        from .recipe import run_recipe
        from .recipe_config import RecipeConfig

        config = RecipeConfig.from_yaml(args.config, parse_overrides(args.set))
        run_recipe(config, Path(args.output_dir), stop_after=args.stop_after)
    else:
        COMMANDS[args.command](args)


# --- prepare ----------------------------------------------------------------------------------
def load_named_corpus(kind: str, path: str | Path, on_error: str = "raise", size: str = "tiny") -> Any:
    """The corpus of ``kind`` at ``path`` as a ``DatasetDict`` (a synthetic one is generated when
    ``path`` holds none)."""
    from datasets_scripts import load_csl_daily, load_phoenix2014t, load_sign_corpus, make_synthetic_corpus

    path = Path(path)
    if kind == "synthetic":
        manifest = path / "manifest.csv"
        if not manifest.exists():
            print(f"generating a {size} synthetic corpus in {path}", file=sys.stderr)
            manifest = make_synthetic_corpus(path, size=size)
        return load_sign_corpus(manifest, on_error=on_error)
    if not path.exists():
        raise FileNotFoundError(f"corpus path {path} does not exist")
    loaders = {"phoenix2014t": load_phoenix2014t, "csl_daily": load_csl_daily, "manifest": load_sign_corpus}
    if kind not in loaders:
        raise ValueError(f"unknown corpus kind {kind!r}; choose one of {', '.join(CORPUS_KINDS)}")
    return loaders[kind](path, on_error=on_error)


def run_prepare(args: argparse.Namespace) -> None:
    from ..publishing.hub import prepare_dataset_upload

    corpus = load_named_corpus(args.kind, args.path, args.on_error, args.size)
    folder = prepare_dataset_upload(corpus, args.output_dir)
    counts = ", ".join(f"{split} {len(corpus[split])}" for split in corpus)
    print(f"wrote {folder} ({counts}); load it with datasets.load_dataset({str(folder)!r})")


# --- evaluate ---------------------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation import write_predictions

    require_model_dir(args.model_dir)
    corpus = load_named_corpus(args.corpus_kind, args.corpus_path, args.on_error, args.size)
    if args.split not in corpus:
        raise ValueError(f"the corpus has no split {args.split!r}; it has {', '.join(corpus)}")
    dataset = corpus[args.split]
    metrics, hypotheses = evaluate_model(args, dataset)
    print(json.dumps(metrics, indent=2))
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

    from .evaluation import evaluate_split, set_generation_defaults

    model = SclSltForSignTranslation.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    set_generation_defaults(model, args.num_beams, args.max_new_tokens)
    collator = SignTranslationCollator(
        tokenizer,
        evaluation_transform(model.config.video_preprocessing),
        min_frames=model.config.temporal_downsampling,
    )
    return evaluate_split(model, dataset, collator, tokenizer, args.language, batch_size=args.batch_size)


# --- translate --------------------------------------------------------------------------------
def run_translate(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm
    from transformers import pipeline

    import modeling_scl_slt  # registers the task: no remote code for a local folder

    require_model_dir(args.model_dir)
    for item in args.inputs:
        if not Path(item).exists():
            raise FileNotFoundError(f"input {item} does not exist: expected a video file or a frame folder")
    translator = pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(args.model_dir))
    generation = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }
    records = []
    with tqdm(total=len(args.inputs), desc="translating", unit="video") as progress:
        for chunk in chunks(args.inputs, args.batch_size):
            results = translator(list(chunk), batch_size=args.batch_size, **generation)
            for item, result in zip(chunk, results, strict=True):
                records.append({"input": item, "translation": result[0]["translation_text"]})
                progress.write(f"{item}\t{result[0]['translation_text']}", file=sys.stdout)
            progress.update(len(chunk))
    if args.output:
        write_text(Path(args.output), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- analyze ----------------------------------------------------------------------------------
def run_analyze(args: argparse.Namespace) -> None:
    from ..method.snapshots import load_snapshot_series
    from ..method.trajectories import analyze_trajectories, write_trajectory_report

    if not Path(args.snapshot_dir).is_dir():
        raise FileNotFoundError(f"snapshot folder {args.snapshot_dir} does not exist")
    snapshots = load_snapshot_series(args.snapshot_dir)
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
    corpus = corpus_of_run(source) if source.is_dir() else load_named_corpus("manifest", source)
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
    from .recipe import RunPaths
    from .recipe_config import RecipeConfig

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
    return load_named_corpus(section.kind, section.path, section.on_error)


# --- push -------------------------------------------------------------------------------------
def run_push(args: argparse.Namespace) -> None:
    from ..publishing.hub import check_online, prepare_dataset_upload, prepare_model_upload, upload_folder

    if args.dataset and not args.dataset_repo_id:
        raise ValueError("--dataset needs --dataset-repo-id USER/NAME")
    check_online(f"push to {args.repo_id!r}")  # before the (possibly long) preparation
    with tempfile.TemporaryDirectory(prefix="scl-slt-push-") as scratch:
        staging = Path(args.staging_dir or scratch)
        model_folder = prepare_model_upload(args.model_dir, staging / "model", repo_id=args.repo_id)
        uploads = [(model_folder, args.repo_id, "model")]
        if args.dataset:
            corpus = load_named_corpus(*args.dataset, args.on_error, args.size)
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
    """Write ``text`` to ``path`` (UTF-8), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


COMMANDS = {
    "prepare": run_prepare,
    "evaluate": run_evaluate,
    "translate": run_translate,
    "analyze": run_analyze,
    "push": run_push,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from datasets_scripts.errors import CorpusError

    from ..publishing.hub import HubError
    from .recipe_config import ConfigError

    try:
        run_command(args)
    except (ConfigError, CorpusError, HubError, FileNotFoundError, FileExistsError, ValueError) as error:
        # A corpus error lists every bad sample on its own line: keep them.
        print(f"scl-slt {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
