"""Publishing, offline: the prepared upload folders load as a Hub user would; uploads fail clearly.

There is no offline dry-run of an upload, so the tests check the exact folders that would be
uploaded (model: loaded in a fresh process that cannot import the project; dataset: reloaded after
the original corpus is deleted) and that the one network function refuses to run offline.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from transformers import pipeline

import modeling_scl_slt
from datasets_scripts import load_sign_corpus, make_synthetic_corpus
from modeling_scl_slt import SclSltForSignTranslation
from tests._isolation import run_without_project
from trainers.application.demo import demo_config
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer
from trainers.publishing.card_facts import LOCAL_PLACEHOLDER
from trainers.publishing.hub import (
    CODE_FILES,
    HubError,
    prepare_dataset_upload,
    prepare_model_upload,
    upload_folder,
)

SENTENCES = ["the rain comes", "sun in the north", "wind from the east strong", "cold night snow ice"]
VIDEO_PREPROCESSING = {"size": 16, "resize": 20, "max_frames": 16}
SCORES = {"bleu1": 30.0, "bleu2": 20.0, "bleu3": 12.5, "bleu4": 8.25, "rouge_l": 31.5}


def save_tiny_model(folder: Path) -> Path:
    """A saved tiny model with its tokenizer and generation config (no card)."""
    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    config = config_for_tokenizer("tiny", tokenizer, "en_XX", video_preprocessing=VIDEO_PREPROCESSING)
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config).eval()
    model.drop_text_branch()
    model.generation_config.max_new_tokens = 5
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipe run directory as the recipe leaves it, minus the card: recipe.yaml, metrics.json, model/."""
    run = tmp_path_factory.mktemp("hub") / "run"
    save_tiny_model(run / "model")
    (run / "recipe.yaml").write_text(yaml.safe_dump(demo_config(quick=True).to_dict()), encoding="utf-8")
    metrics = {"validation": SCORES, "test": SCORES}
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def prepared(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_model_upload(
        run_dir / "model", tmp_path_factory.mktemp("upload") / "model", repo_id="me/scl"
    )


def test_prepared_model_folder_holds_exactly_what_a_fresh_load_needs(prepared: Path) -> None:
    names = {path.name for path in prepared.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "README.md"} <= names
    assert {"tokenizer_config.json", "tokenizer.json"} <= names
    assert set(CODE_FILES) <= names
    assert not {"checkpoint", "optimizer.pt", "trainer_state.json"} & names
    config = json.loads((prepared / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}
    assert modeling_scl_slt.PIPELINE_TASK in config["custom_pipelines"]
    assert config["video_preprocessing"] == VIDEO_PREPROCESSING
    assert json.loads((prepared / "generation_config.json").read_text())["max_new_tokens"] == 5


def test_run_without_a_card_gets_one_with_its_metrics_and_repo_id(prepared: Path) -> None:
    card = ModelCard.load(prepared / "README.md")
    assert card.data.library_name == "transformers"
    bleu4 = [
        r.metric_value
        for r in card.data.eval_results
        if r.dataset_split == "test" and "BLEU-4" in r.metric_name
    ]
    assert bleu4 == [SCORES["bleu4"]]
    assert "me/scl" in card.text and LOCAL_PLACEHOLDER not in card.text


def test_an_existing_card_is_uploaded_with_the_repo_id_in_its_snippets(run_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    (model / "README.md").write_text(f"---\nlicense: mit\n---\n\nLoad `{LOCAL_PLACEHOLDER}`.\n")
    out = prepare_model_upload(model, tmp_path / "upload", repo_id="me/other")
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "mit" and "Load `me/other`." in card.text


@pytest.mark.parametrize(
    ("remove", "named"),
    [("tokenizer_config.json", "tokenizer_config.json"), ("model.safetensors", "model.safetensors")],
)
def test_a_missing_required_file_is_named(run_dir: Path, tmp_path: Path, remove: str, named: str) -> None:
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    (model / remove).unlink()
    (model / "README.md").write_text("# card\n")
    with pytest.raises(FileNotFoundError, match=named):
        prepare_model_upload(model, tmp_path / "upload")


def test_a_model_outside_a_run_needs_its_own_card(run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir / "model", tmp_path / "model")
    with pytest.raises(FileNotFoundError, match=r"README\.md is missing"):
        prepare_model_upload(tmp_path / "model", tmp_path / "upload")
    assert not (tmp_path / "upload").exists()


# Runs in a fresh interpreter that cannot import the project, offline: a Hub user's view.
FRESH_LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import AutoModel, pipeline

    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    translate = pipeline("sign-language-translation", model=folder, trust_remote_code=True)
    clip = np.load(sys.argv[2])
    print(json.dumps({"model": type(model).__name__, "translation": translate(clip, num_beams=2)}))
    """
)


def test_prepared_folder_loads_and_translates_where_the_project_is_not_installed(
    prepared: Path, tmp_path: Path
) -> None:
    clip = np.random.default_rng(0).integers(0, 256, (12, 24, 20, 3), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", clip)
    expected = pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(prepared))(clip, num_beams=2)
    result = run_without_project(FRESH_LOAD, str(prepared), str(tmp_path / "clip.npy"), workdir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["model"] == "SclSltForSignTranslation"
    assert loaded["translation"] == expected and isinstance(expected[0]["translation_text"], str)


def test_prepared_dataset_reloads_after_the_corpus_is_deleted(tmp_path: Path) -> None:
    manifest = make_synthetic_corpus(tmp_path / "corpus", size="tiny", video_format="frames")
    corpus = load_sign_corpus(manifest, cache_dir=tmp_path / "cache")
    expected_name, expected = (
        corpus["validation"][2]["name"],
        np.asarray(corpus["validation"][2]["frames"][3]),
    )
    folder = prepare_dataset_upload(corpus, tmp_path / "upload")
    shutil.rmtree(tmp_path / "corpus")

    assert sorted(path.name for path in (folder / "data").iterdir()) == [
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    reloaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "reload"))
    assert {split: len(reloaded[split]) for split in reloaded} == {"train": 24, "validation": 6, "test": 6}
    row = reloaded["validation"][2]
    assert row["name"] == expected_name
    assert np.array_equal(np.asarray(row["frames"][3]), expected)
    card = huggingface_hub.DatasetCard.load(folder / "README.md")
    assert [entry["split"] for entry in card.data.configs[0]["data_files"]] == ["train", "validation", "test"]


def test_upload_refuses_to_run_offline(prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline mode is on"):
        upload_folder(prepared, "me/scl")


def test_hub_errors_become_one_clear_error(prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise huggingface_hub.errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)  # no request leaves the machine
    with pytest.raises(HubError, match=r"could not upload .* 'me/scl': Cannot reach"):
        upload_folder(prepared, "me/scl")


def test_upload_of_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        upload_folder(tmp_path / "nothing", "me/scl")
