"""End to end: `scl-slt demo --quick` runs the whole recipe; resuming; the CLI's user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from datasets_scripts import DUPLICATE_RICH
from trainers.application.cli import main
from trainers.application.demo import demo_config
from trainers.application.recipe import run_recipe
from trainers.application.recipe_config import ConfigError, RecipeConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--quick", "--output-dir", str(run_dir)]) == 0
    return run_dir


@pytest.mark.slow
def test_quick_demo_writes_the_documented_run_directory(quick_run: Path) -> None:
    for name in (
        "recipe.yaml",
        "tokenizer",
        "initial",
        "snapshots",
        "trajectories.json",
        "trajectories.png",
        "pair_scores.safetensors",
        "metrics.json",
        "model",
        "predictions/test.jsonl",
        "demo.json",
    ):
        assert (quick_run / name).exists(), name
    for stage in ("reference", "scl", "translate"):
        assert (quick_run / stage / "DONE").exists() and (
            quick_run / stage / "model" / "config.json"
        ).exists()
    metrics = json.loads((quick_run / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert set(metrics[split]) >= {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}
        assert 0.0 <= metrics[split]["bleu4"] <= 100.0
    assert 0.0 <= metrics["validation_retrieval_after_scl"]["eval_video_to_text_r1"] <= 100.0
    trajectories = json.loads((quick_run / "trajectories.json").read_text())
    assert set(trajectories["shares"]) == {"H->L", "H->H", "L->H", "L->L"}
    assert sum(trajectories["shares"].values()) == pytest.approx(1.0)
    assert trajectories["num_samples"] == 24 and trajectories["num_snapshots"] == 2
    predictions = [
        json.loads(line) for line in (quick_run / "predictions" / "test.jsonl").read_text().splitlines()
    ]
    assert len(predictions) == 6 and {"name", "reference", "hypothesis"} <= set(predictions[0])


@pytest.mark.slow
def test_the_run_writes_a_model_card_with_its_metrics(quick_run: Path) -> None:
    card = ModelCard.load(quick_run / "model" / "README.md")
    metrics = json.loads((quick_run / "metrics.json").read_text())
    results = {
        (r.dataset_split, r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results
    }
    bleu4 = [value for (split, kind, name), value in results.items() if split == "test" and "BLEU-4" in name]
    assert bleu4 == [pytest.approx(metrics["test"]["bleu4"])]
    assert card.data.library_name == "transformers" and "en" in card.data.language


@pytest.mark.slow
def test_final_model_loads_as_a_user_would(quick_run: Path) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(quick_run / "model")
    assert model.text_encoder is None, "the translation model must not carry the text branch"
    # The pipeline preprocesses with the settings the model was trained with.
    assert model.config.video_preprocessing == {"size": 32, "resize": 32, "max_frames": 32, "augment": True}
    assert model.lm_head.weight is model.decoder.embed_tokens.weight
    pixels = torch.randn(1, 16, 3, 64, 64)
    generated = model.generate(pixel_values=pixels, max_new_tokens=4, num_beams=1)
    assert generated[0, 0] == model.config.decoder_start_token_id


@pytest.mark.slow
def test_finished_run_resumes_as_a_no_op_and_an_interrupted_stage_reruns(quick_run: Path, tmp_path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(quick_run, copy)
    expected = json.loads((copy / "metrics.json").read_text())
    assert run_recipe(demo_config(quick=True), copy, report=lambda _: None) == expected
    # Forget that translation finished: only that stage and the evaluation run again.
    scl_weights = (copy / "scl" / "model" / "model.safetensors").read_bytes()
    for path in (copy / "translate" / "DONE", copy / "metrics.json"):
        path.unlink()
    shutil.rmtree(copy / "model")
    messages: list[str] = []
    metrics = run_recipe(demo_config(quick=True), copy, report=messages.append)
    assert any("stage scl: already done" in m for m in messages)
    assert any(m.startswith("stage translate:") and "already done" not in m for m in messages)
    assert (copy / "scl" / "model" / "model.safetensors").read_bytes() == scl_weights
    assert set(metrics["test"]) == set(expected["test"])


@pytest.mark.slow
def test_resuming_with_another_config_is_refused(quick_run: Path) -> None:
    other = demo_config(quick=True)
    other.scl.epochs = 7
    with pytest.raises(ConfigError, match="different config"):
        run_recipe(other, quick_run, report=lambda _: None)


def test_configs_synthetic_yaml_is_the_demo_config() -> None:
    assert RecipeConfig.from_yaml(REPO / "configs" / "synthetic.yaml") == demo_config()


@pytest.mark.parametrize("name", ["phoenix2014t", "csl_daily"])
def test_paper_configs_load(name: str) -> None:
    config = RecipeConfig.from_yaml(REPO / "configs" / f"{name}.yaml")
    assert (config.scl.epochs, config.scl.batch_size, config.translate.epochs) == (80, 16, 200)
    assert config.translate.label_smoothing == 0.2 and config.reference.snapshot_interval == 5


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("scl:\n  epoch: 3\n", "unknown key(s) ['epoch']"),
        ("scl:\n  epochs: many\n", "scl.epochs: expected float, got 'many'"),
        ("scl:\n  init_from: elsewhere\n", "is not one of ['initial', 'reference']"),
        ("corpus:\n  synthetic_options:\n    colour: red\n", "synthetic_options: unknown key(s) ['colour']"),
    ],
)
def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys, config_text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(config_text)
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1 and "Traceback" not in error


def test_cli_reports_a_missing_config(tmp_path, capsys) -> None:
    assert main(["train", str(tmp_path / "nope.yaml"), "--output-dir", str(tmp_path)]) == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err


def test_cli_help_lists_the_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "train" in out


@pytest.mark.slow
def test_stop_after_reference_leaves_scores_of_a_duplicate_rich_corpus(tmp_path) -> None:
    config = demo_config(quick=True)
    config.model.preset = "tiny"
    config.corpus.synthetic_options = {"frame_size": 32, **DUPLICATE_RICH}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    run_dir = tmp_path / "run"
    assert main(["train", str(config_file), "--output-dir", str(run_dir), "--stop-after", "reference"]) == 0
    assert (run_dir / "reference" / "DONE").exists() and (run_dir / "pair_scores.safetensors").exists()
    assert (run_dir / "trajectories.json").exists() and not (run_dir / "scl").exists()
    manifest = (run_dir / "corpus" / "manifest.csv").read_text().splitlines()[1:]
    train_texts = [row.split(",")[2] for row in manifest if row.startswith("train-")]
    assert len(set(train_texts)) <= 0.6 * len(train_texts), "the duplicate-rich corpus repeats sentences"
    first_frame = next((run_dir / "corpus" / "frames" / "train").glob("*/0001.png"))
    assert Image.open(first_frame).size == (32, 32)


@pytest.mark.slow
def test_recipe_with_lora_saves_merged_plain_models(tmp_path) -> None:
    config = demo_config(quick=True)
    config.model.preset = "tiny"
    config.lora.enabled, config.lora.r, config.lora.alpha = True, 4, 8
    metrics = run_recipe(config, tmp_path / "run", report=lambda _: None)
    assert 0.0 <= metrics["test"]["bleu4"] <= 100.0
    for folder in ("scl/model", "translate/model", "model"):
        assert not (tmp_path / "run" / folder / "adapter_config.json").exists()
        model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / folder)
        assert not [name for name, _ in model.named_modules() if "lora" in name], folder
    initial = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "initial")
    final = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "model")
    name = "decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(initial.state_dict()[name], final.state_dict()[name]), "LoRA was not merged"


@pytest.mark.slow
def test_recipe_from_pretrained_parts_trims_the_pretrained_vocabulary(tmp_path) -> None:
    from transformers import (
        MBartConfig,
        MBartForConditionalGeneration,
        ResNetConfig,
        ResNetForImageClassification,
    )

    from tests.test_pretrained_parts import TINY_MBART
    from trainers.application.tokenization import train_tokenizer

    # A "pretrained" tokenizer that knows far more than the weather domain of the corpus.
    other_words = ["harbour", "violin", "theorem", "glacier", "orbit", "lantern", "meadow", "quartz"]
    texts = [f"{a} {b} tomorrow in the north rain" for a in other_words for b in other_words]
    tokenizer = train_tokenizer(texts, tgt_lang="en_XX", vocab_size=200, model="unigram")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    ResNetForImageClassification(
        ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic")
    ).save_pretrained(tmp_path / "resnet")
    mbart = {
        **TINY_MBART,
        "vocab_size": len(tokenizer),
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }
    MBartForConditionalGeneration(MBartConfig(**mbart)).save_pretrained(tmp_path / "mbart")

    config = demo_config(quick=True)
    config.model.tokenizer = str(tmp_path / "tokenizer")
    config.model.backbone, config.model.text_model = str(tmp_path / "resnet"), str(tmp_path / "mbart")
    config.model.trim_vocabulary = True
    run_recipe(config, tmp_path / "run", report=lambda _: None)

    trimmed = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "model")
    assert len(trimmed) < len(tokenizer)
    assert model.config.text_config.vocab_size == len(trimmed) == model.lm_head.weight.shape[0]
    assert model.config.decoder_start_token_id == trimmed.convert_tokens_to_ids("en_XX")
    sentence = "tomorrow in the north rain"
    assert trimmed.tokenize(sentence) == tokenizer.tokenize(sentence)
