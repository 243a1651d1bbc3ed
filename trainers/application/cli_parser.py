"""The argument parser of the `scl-slt` command line (the commands are in ``cli``).

It imports only the standard library: ``scl-slt --help``, every ``scl-slt COMMAND --help`` and
every argument error answer without loading torch or the training stack.
"""

from __future__ import annotations

import argparse
from typing import Any

CORPUS_KINDS = ("phoenix2014t", "csl_daily", "manifest", "synthetic")
SYNTHETIC_SIZES = ("tiny", "small", "default", "large")
CORPUS_HELP = (
    "phoenix2014t: the release folder; csl_daily: the CSL-Daily folder; manifest: a CSV/TSV/JSONL "
    "manifest; synthetic: the folder of a generated synthetic corpus (with --generate: generated "
    "there when it holds none)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scl-slt",
        description="Selective Contrastive Learning for gloss-free Sign Language Translation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_demo,
        add_train,
        add_plan,
        add_prepare,
        add_extract_features,
        add_evaluate,
        add_translate,
        add_analyze,
        add_app,
        add_push,
    ):
        add(commands)
    return parser


def add_overwrite(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in --output-dir and start over (refused for a folder that is not "
        "a run directory, i.e. has no recipe.yaml of a run)",
    )


def add_overrides(command: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): override a value of the command's config."""
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set scl.epochs=10 (repeatable; VALUE is YAML)",
    )


def add_quiet(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (they are drawn only on a terminal anyway); the step and result lines "
        "still print",
    )


def add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole recipe on the built-in synthetic sign language (CPU)",
        description="Generate the synthetic corpus, run reference → Pair Selection → scl → translate, "
        "print dev/test BLEU-4 and translate one test video.",
    )
    demo.add_argument("--output-dir", default="scl-slt-demo", help="run directory (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="the same path on 24 training videos")
    add_overwrite(demo)
    add_quiet(demo)


def add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="run (or resume) the recipe from a YAML config",
        description="Run reference → Pair Selection → scl → translate → test evaluation from a config "
        "(see configs/); an interrupted run resumes where it stopped. The whole config (and the corpus "
        "path) is checked before any work.",
    )
    train.add_argument("config", help="recipe YAML file")
    train.add_argument("--output-dir", required=True, help="run directory")
    add_overrides(train)
    train.add_argument(
        "--stop-after",
        choices=("reference", "scl"),
        help="stop after the reference run (with its trajectory report and Pair Selection scores) "
        "or after stage scl; running again without it resumes from there",
    )
    add_overwrite(train)
    add_quiet(train)


def add_plan(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="each stage's memory per device (and time) from a YAML config, before anything trains",
        description="Estimate, for every stage of a config: the parameters, the peak memory of one "
        "training step per device (weights, gradients, optimizer state, activations) at the stage's batch "
        "size and the frame cap, as configured and with each memory knob; whether it fits --gpu-memory "
        "and which settings to change if not; the time per epoch where frames/s were measured for the "
        "GPU. Nothing is downloaded or allocated. Exit status 1 when the run does not fit.",
    )
    plan.add_argument("config", help="recipe YAML file")
    plan.add_argument(
        "--gpus",
        type=positive_int,
        help="GPUs of the run (default: 1 with --gpu-memory, else this machine's)",
    )
    plan.add_argument(
        "--gpu-memory",
        type=positive_float,
        metavar="GB",
        help="memory of one GPU in GiB, e.g. 80 (default: read from this machine's GPU; none: not checked)",
    )
    plan.add_argument(
        "--device-name",
        metavar="NAME",
        help="GPU model for the time estimate, e.g. H100 (default: this machine's)",
    )
    add_overrides(plan)


def add_corpus_options(command: argparse.ArgumentParser) -> None:
    """``--on-error``, ``--generate`` and ``--size``, shared by the commands that load a corpus."""
    command.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="bad samples: stop with a list of them, or skip and report each (default: %(default)s)",
    )
    command.add_argument(
        "--generate",
        action="store_true",
        help="synthetic corpus only: generate one of --size at the path when it holds none (without "
        "it, a missing corpus is an error)",
    )
    command.add_argument(
        "--size",
        choices=SYNTHETIC_SIZES,
        default="tiny",
        help="with --generate: the size of the generated synthetic corpus (default: %(default)s)",
    )


def add_generation_options(command: argparse.ArgumentParser) -> None:
    """``--num-beams`` and ``--max-new-tokens``, with the same defaults for evaluate and translate."""
    command.add_argument(
        "--num-beams", type=positive_int, help="beam size (default: the model's generation config)"
    )
    command.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="longest translation (default: the model's generation config, else the pipeline's "
        "default length)",
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


def add_extract_features(commands: Any) -> None:
    extract = commands.add_parser(
        "extract-features",
        help="run a frozen backbone once over every frame of a config's corpus (frame-features corpus)",
        description="Write the per-frame backbone features of every video of the config's corpus, "
        "through its evaluation transform (video.image_size, video.resize), in float16 parquet shards "
        "with features.json (the backbone's identity). Training reads them with video.features: "
        "OUTPUT_DIR. An interrupted extraction resumes: complete shards are kept.",
    )
    extract.add_argument("config", help="recipe YAML file (its corpus, video and model sections)")
    extract.add_argument("--output-dir", required=True, help="the features folder to write or resume")
    extract.add_argument(
        "--model",
        metavar="MODEL_DIR",
        help="take the backbone of this saved model folder (default: the config's model.backbone)",
    )
    extract.add_argument("--batch-size", type=positive_int, default=4, help="videos per batch (default: 4)")
    extract.add_argument(
        "--shard-size", type=positive_int, default=256, help="videos per parquet shard (default: 256)"
    )
    extract.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers that decode videos (default: 0)"
    )
    add_overrides(extract)
    add_quiet(extract)


def add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU-1..4 and ROUGE-L of a saved model on a corpus split",
        description="Translate a corpus split with a saved model (preprocessing from the model's "
        "config.video_preprocessing, as in training) and score BLEU-1..4 and ROUGE-L; prints the "
        "scores as JSON (2 decimals; --metrics-output keeps full precision).",
    )
    evaluate.add_argument("model_dir", help="saved model folder (with its tokenizer)")
    evaluate.add_argument("--corpus-kind", required=True, choices=CORPUS_KINDS, help="corpus kind")
    evaluate.add_argument("--corpus-path", required=True, help=CORPUS_HELP)
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: %(default)s)")
    add_generation_options(evaluate)
    evaluate.add_argument("--batch-size", type=positive_int, default=8, help="videos per batch (default: 8)")
    evaluate.add_argument(
        "--language",
        help="target language code: BLEU tokenisation 13a, or characters for zh (default: the "
        "corpus's: en for synthetic, de for phoenix2014t, zh for csl_daily; for a manifest the "
        "model's tgt_lang)",
    )
    evaluate.add_argument("--output", help="write one JSON line per video (name, reference, hypothesis)")
    evaluate.add_argument("--metrics-output", help="also write the scores to this JSON file")
    add_corpus_options(evaluate)


def add_translate(commands: Any) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate video files or frame folders with a saved model",
        description="Translate each input through the sign-language-translation pipeline and print "
        "`input<TAB>translation` lines (with windows: `input<TAB>START-END<TAB>translation`, seconds). "
        "Every input is resampled to the model's frame rate; a video longer than the model reads at "
        "once needs --chunk-length-s (or --subtitles).",
    )
    translate.add_argument("model_dir", help="saved model folder (with its tokenizer)")
    translate.add_argument("inputs", nargs="+", metavar="INPUT", help="video file or folder of frame images")
    translate.add_argument(
        "--batch-size", type=positive_int, default=1, help="windows per batch (default: 1)"
    )
    translate.add_argument(
        "--fps",
        type=positive_float,
        help="frame rate of frame folders (default: the model's config.frame_rate); video files use "
        "their own time stamps",
    )
    translate.add_argument(
        "--chunk-length-s",
        type=positive_float,
        help="translate in windows of at most this many seconds, each with its start and end time "
        "(default: the whole video in one window; with --subtitles: the longest window the model reads)",
    )
    translate.add_argument(
        "--stride-length-s",
        type=non_negative_float,
        help="seconds of context read on each side of a window, not reported as its span (default: "
        "a sixth of --chunk-length-s)",
    )
    translate.add_argument(
        "--fixed-windows",
        action="store_true",
        help="end windows on a fixed grid instead of where the signing pauses (least motion)",
    )
    translate.add_argument(
        "--subtitles",
        metavar="FILE",
        help="write the windows' translations as subtitles: FILE ending in .vtt (WebVTT) or .srt "
        "(SubRip); one INPUT only",
    )
    add_generation_options(translate)
    translate.add_argument(
        "--output", help="also write one JSON line per input (input, translation, and its windows)"
    )


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


def add_app(commands: Any) -> None:
    app = commands.add_parser(
        "app",
        help="serve a web page to translate uploaded or webcam videos with a saved model",
        description="Serve a Gradio page for the model in MODEL_DIR: upload a video or record one with "
        "the webcam, read the translation; the page shows the model's name, languages, card scores and "
        "limits. Needs the optional extra: pip install 'scl-slt[app]'. Stop it with Ctrl+C.",
    )
    app.add_argument("model_dir", help="saved model folder (with its tokenizer; its README.md card if any)")
    app.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s, this machine only; 0.0.0.0 serves the network)",
    )
    app.add_argument(
        "--port",
        type=positive_int,
        help="port (default: the first free one from 7860, or GRADIO_SERVER_PORT)",
    )


def add_push(commands: Any) -> None:
    push = commands.add_parser(
        "push",
        help="upload a model (and optionally its corpus and a Space) to the Hugging Face Hub",
        description="Assemble the model folder (weights, config, code files, tokenizer, generation "
        "config, model card) and upload it; with --dataset, also the corpus as parquet; with "
        "--space-repo-id, also a Gradio Space (app.py, the page, pinned requirements.txt, a Space card) "
        "that serves the model. Needs the network and a token (hf auth login or HF_TOKEN).",
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
        "--space-repo-id",
        help="also upload a Gradio Space, USER/NAME, whose page translates with the model of --repo-id "
        "(needs the optional extra: pip install 'scl-slt[app]')",
    )
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


def positive_float(value: str) -> float:
    """argparse type: a number above 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return number


def non_negative_float(value: str) -> float:
    """argparse type: a finite number of at least 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value}") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return number


def corpus_spec(value: str) -> tuple[str, str]:
    """argparse type: ``KIND:PATH`` → (kind, path)."""
    kind, separator, path = value.partition(":")
    if not separator or kind not in CORPUS_KINDS or not path:
        raise argparse.ArgumentTypeError(f"expected KIND:PATH with KIND one of {', '.join(CORPUS_KINDS)}")
    return kind, path
