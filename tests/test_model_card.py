"""Model cards: written from a fake run directory, then parsed back with ``ModelCard.load``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from model_cards import TRANSLATION_TEMPLATE, read_template
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from trainers.application.recipe_config import RecipeConfig
from trainers.publishing.card_model import count_parameters
from trainers.publishing.model_card import build_model_card, write_model_card

METRICS = {
    "validation": {
        "loss": 2.5,
        "bleu1": 51.234567,
        "bleu2": 38.5,
        "bleu3": 30.125,
        "bleu4": 25.3,
        "rouge_l": 47.02,
    },
    "test": {
        "loss": 2.6,
        "bleu1": 50.5,
        "bleu2": 37.75,
        "bleu3": 29.0,
        "bleu4": 24.987654321,
        "rouge_l": 46.5,
    },
    "validation_retrieval_after_scl": {
        "eval_video_to_text_r1": 40.0,
        "eval_video_to_text_r5": 70.0,
        "eval_video_to_text_r10": 80.0,
        "eval_text_to_video_r1": 41.0,
        "eval_text_to_video_r5": 71.0,
        "eval_text_to_video_r10": 81.0,
    },
}
SHARES = {"H->L": 0.359, "H->H": 0.319, "L->H": 0.178, "L->L": 0.144}
METRIC_NAMES = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A real tiny model folder, and its parameter count."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    model = SclSltForSignTranslation(SclSltConfig.from_preset("tiny"))
    model.save_pretrained(folder)
    return folder, model.num_parameters()


def make_run(root: Path, model_dir: Path, **corpus: object) -> Path:
    """A run directory: recipe.yaml, metrics.json, trajectories.json and model/."""
    recipe = RecipeConfig().to_dict()
    recipe["corpus"].update(corpus)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=True), encoding="utf-8")
    (root / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    trajectories = {
        "num_samples": 100,
        "num_snapshots": 3,
        "num_pairs": 9900,
        "shares": SHARES,
        "threshold_rule": "high = similarity > the median at the first snapshot",
        "consistently_pushed_share": 0.25,
        "num_identical_text_pairs": 12,
    }
    (root / "trajectories.json").write_text(json.dumps(trajectories), encoding="utf-8")
    shutil.copytree(model_dir, root / "model")
    return root


@pytest.fixture(scope="module")
def synthetic_card(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: tuple[Path, int]) -> ModelCard:
    """The card of a default (synthetic-corpus) run, written to disk and parsed back."""
    run = make_run(tmp_path_factory.mktemp("run") / "run", tiny_model_dir[0])
    path = write_model_card(run)
    assert path == run / "model" / "README.md"
    return ModelCard.load(path)


def test_metadata_round_trips(synthetic_card: ModelCard) -> None:
    data = synthetic_card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "video-text-to-text"  # the Hub task with video in, text out
    assert data.language == ["de"]
    assert data.license == "apache-2.0"
    assert {"sign-language-translation", "scl-slt", "gloss-free"} <= set(data.tags)
    assert data.base_model is None  # the default recipe starts from scratch


def test_model_index_holds_every_metric_of_every_split_exactly(synthetic_card: ModelCard) -> None:
    results = synthetic_card.data.eval_results
    assert len(results) == 2 * len(METRIC_NAMES)
    for result in results:
        assert result.task_type == "translation"
        assert result.dataset_type == "synthetic"
    for split in ("validation", "test"):
        found = {r.metric_name: r for r in results if r.dataset_split == split}
        for order in (1, 2, 3, 4):
            (name,) = [n for n in found if n.startswith(f"BLEU-{order} ")]
            assert "sacrebleu corpus BLEU, tokenize 13a" in name
            assert found[name].metric_type == "bleu"
            assert found[name].metric_args["max_ngram_order"] == order
            assert found[name].metric_value == METRICS[split][f"bleu{order}"]
        (rouge,) = [r for n, r in found.items() if n.startswith("ROUGE-L")]
        assert "beta 1.2" in rouge.metric_name and rouge.metric_args["beta"] == 1.2
        assert rouge.metric_value == METRICS[split]["rouge_l"]


def test_card_text_has_every_section(synthetic_card: ModelCard) -> None:
    text = synthetic_card.text
    for heading in (
        "## Model description",
        "## Training data",
        "## Training procedure",
        "## Evaluation results",
        "## Intended use and limitations",
        "## How to use",
        "## Citation",
    ):
        assert heading in text
    assert "```bibtex\n@inproceedings{lai2026sclslt," in text
    assert "eprint        = {2604.22374}" in text
    assert "Lai, Changhao and Zhao, Rui and Zhong, Xuewen and Su, Jinsong and Chen, Yidong" in text
    assert "doi" not in text.lower() and "pages" not in text
    assert 'AutoModelForSeq2SeqLM.from_pretrained("path/to/model", trust_remote_code=True)' in text
    assert "Not a replacement for human interpreters" in text
    assert "Synthetic-corpus models are demos only" in text
    assert "| test | 50.50 | 37.75 | 29.00 | 24.99 | 46.50 |" in text
    assert "| H→L | pushed apart (easy) | 35.9 % |" in text
    assert "| `scl` | 1 | 16 | 1 | 0.0001 | cosine |" in text


@pytest.mark.parametrize("ships_pipeline", [True, False])
def test_pipeline_snippet_only_when_the_folder_ships_the_pipeline(
    tmp_path: Path, tiny_model_dir: tuple[Path, int], ships_pipeline: bool
) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0])
    config_path = run / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("custom_pipelines", None)
    if ships_pipeline:
        entry = {"impl": "pipeline_scl_slt.SignLanguageTranslationPipeline", "pt": ["AutoModelForSeq2SeqLM"]}
        config["custom_pipelines"] = {"sign-language-translation": entry}
    config_path.write_text(json.dumps(config))
    text = build_model_card(run, repo_id="someone/model").text
    snippet = 'pipeline("sign-language-translation", model="someone/model", trust_remote_code=True)'
    assert (snippet in text) == ships_pipeline
    assert 'AutoModelForSeq2SeqLM.from_pretrained("someone/model", trust_remote_code=True)' in text


def test_parameter_count_from_headers_matches_the_model(tiny_model_dir: tuple[Path, int]) -> None:
    folder, num_parameters = tiny_model_dir
    total, parts = count_parameters(folder)
    assert total == num_parameters
    assert parts["video_encoder.temporal"] > 0


def test_real_corpus_card(tmp_path: Path, tiny_model_dir: tuple[Path, int]) -> None:
    run = make_run(
        tmp_path / "run", tiny_model_dir[0], kind="phoenix2014t", path="data/phoenix", language="de"
    )
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["model"]["text_model"] = "facebook/mbart-large-50"
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    card = build_model_card(run, repo_id="someone/scl-slt-phoenix")
    assert card.data.license == "unknown"  # the corpus' terms decide, not our code's licence
    assert card.data.language == ["de", "gsg"]
    assert card.data.base_model == "facebook/mbart-large-50"
    assert card.data.eval_results[0].dataset_type == "phoenix2014t"
    assert 'from_pretrained("someone/scl-slt-phoenix", trust_remote_code=True)' in card.text
    assert "Synthetic-corpus models are demos only" not in card.text
    assert "the paper's" in card.text and "BLEU-4 26.00" in card.text

    card = build_model_card(run, license="cc-by-nc-sa-4.0", datasets=["someone/phoenix"], base_model="x/y")
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert card.data.datasets == ["someone/phoenix"]
    assert card.data.base_model == "x/y"
    assert card.data.eval_results[0].dataset_type == "someone/phoenix"


def test_chinese_corpus_states_character_level_metrics(
    tmp_path: Path, tiny_model_dir: tuple[Path, int]
) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0], kind="csl_daily", path="data/csl", language="zh")
    card = build_model_card(run)
    assert card.data.language == ["zh", "csl"]
    names = {result.metric_name for result in card.data.eval_results}
    assert "BLEU-4 (sacrebleu corpus BLEU, tokenize zh)" in names
    assert any("characters" in name for name in names if name.startswith("ROUGE-L"))


def test_adapter_folder_gets_the_peft_snippet(tmp_path: Path, tiny_model_dir: tuple[Path, int]) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {
        "base_model_name_or_path": "someone/base",
        "r": 16,
        "lora_alpha": 32,
        "target_modules": ["q_proj"],
    }
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    save_file(
        {"base_model.model.decoder.lora_A.weight": torch.zeros(16, 8)}, adapter / "adapter_model.safetensors"
    )
    card = ModelCard.load(write_model_card(run, model_dir=adapter))
    assert 'AutoPeftModelForSeq2SeqLM.from_pretrained("path/to/model", trust_remote_code=True)' in card.text
    assert "rank 16, alpha 32" in card.text and "128 adapter parameters" in card.text
    assert "sign-language-translation" not in card.text.split("## How to use")[1].split("```bibtex")[0]


def test_older_runs_and_missing_optional_files_still_work(
    tmp_path: Path, tiny_model_dir: tuple[Path, int]
) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0])
    (run / "trajectories.json").unlink()
    (run / "recipe.yaml").write_text(yaml.safe_dump({"corpus": {"kind": "synthetic", "language": "en"}}))
    (run / "metrics.json").write_text(json.dumps({"test": METRICS["test"]}))
    card = build_model_card(run)
    assert [r.dataset_split for r in card.data.eval_results] == ["test"] * len(METRIC_NAMES)
    assert "Trajectories of negative pairs" not in card.text
    assert "| dev (validation)" not in card.text


@pytest.mark.parametrize("missing", ["metrics.json", "recipe.yaml"])
def test_missing_run_file_is_named(tmp_path: Path, tiny_model_dir: tuple[Path, int], missing: str) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0])
    (run / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        write_model_card(run)
    assert not (run / "model" / "README.md").exists()


def test_unreadable_metrics_and_missing_model_folder_are_clear(
    tmp_path: Path, tiny_model_dir: tuple[Path, int]
) -> None:
    run = make_run(tmp_path / "run", tiny_model_dir[0])
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics\.json is not valid JSON"):
        build_model_card(run)
    (run / "metrics.json").write_text(json.dumps({"test": {"loss": 1.0}}))
    with pytest.raises(ValueError, match=r"metrics\.json holds no BLEU / ROUGE-L scores"):
        build_model_card(run)
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        write_model_card(run, model_dir=tmp_path / "elsewhere")


def test_template_is_package_data() -> None:
    text = read_template(TRANSLATION_TEMPLATE)
    assert text.startswith("---\n{{ card_data }}\n---")
    with pytest.raises(FileNotFoundError, match=r"nothing\.md"):
        read_template("nothing.md")
