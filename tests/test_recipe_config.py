"""The recipe config refuses every bad value in one line naming the key, the value and what is allowed.

Every numeric field carries its range (``bounds`` metadata) and every fixed choice is a ``Literal``
kept equal to its source of truth (which imports torch or transformers; the config may not).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import transformers
import yaml

from datasets_scripts.synthetic import SIZE_PRESETS
from modeling_scl_slt import PRESETS
from trainers.application import recipe_config
from trainers.application.demo import demo_config
from trainers.application.recipe_config import (
    Bounds,
    ConfigError,
    RecipeConfig,
    validate_config,
)
from trainers.method.sampler import SCHEDULES
from trainers.training.arguments import BatchSamplers, ContrastiveLosses

REPO = Path(__file__).resolve().parents[1]


def leaf_fields(cls: type = RecipeConfig, prefix: str = "") -> list[tuple[str, Any, dataclasses.Field]]:
    """(dotted key, type hint, field) of every non-section field of the config."""
    hints = typing.get_type_hints(cls)
    fields = []
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]):
            fields.extend(leaf_fields(hints[item.name], f"{prefix}{item.name}."))
        else:
            fields.append((prefix + item.name, hints[item.name], item))
    return fields


def is_numeric(hint: Any) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(option in (int, float) for option in options)


def outside(bounds: Bounds, integer: bool) -> float:
    """A value just outside ``bounds``."""
    step = 1 if integer else 0.5
    if bounds.low is not None:
        return bounds.low if not bounds.include_low else bounds.low - step
    return bounds.high if not bounds.include_high else bounds.high + step


def load(tmp_path: Path, overrides: dict[str, Any]) -> RecipeConfig:
    config = tmp_path / "config.yaml"
    config.write_text("seed: 0\n")
    return RecipeConfig.from_yaml(config, overrides)


NUMERIC_FIELDS = [(key, hint, item) for key, hint, item in leaf_fields() if is_numeric(hint)]


def test_every_numeric_field_has_a_range() -> None:
    unranged = [key for key, _, item in NUMERIC_FIELDS if "bounds" not in item.metadata]
    assert not unranged, f"give these fields bounds metadata: {unranged}"
    assert len(NUMERIC_FIELDS) >= 40  # the sections' numbers, e.g. scl.epochs and scl.label_smoothing


@pytest.mark.parametrize(("key", "hint", "item"), NUMERIC_FIELDS, ids=[key for key, _, _ in NUMERIC_FIELDS])
def test_a_value_outside_a_fields_range_is_one_line(tmp_path: Path, key: str, hint: Any, item: Any) -> None:
    bounds = item.metadata["bounds"]
    integer = float not in (typing.get_args(hint) or (hint,))
    value = outside(bounds, integer)
    value = int(value) if integer else float(value)
    with pytest.raises(ConfigError) as error:
        load(tmp_path, {key: value})
    expected = bounds.describe(integer=integer)
    shown = recipe_config.number(value)
    assert (
        str(error.value) == f"{tmp_path / 'config.yaml'}: {key}: {shown} is out of range; expected {expected}"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("scl.epochs", -3, "scl.epochs: -3 is out of range; expected a number > 0"),
        ("scl.batch_size", 0, "scl.batch_size: 0 is out of range; expected an integer >= 1"),
        ("scl.label_smoothing", 1.0, "scl.label_smoothing: 1 is out of range; expected a number in [0, 1)"),
        (
            "translate.warmup_ratio",
            1,
            "translate.warmup_ratio: 1 is out of range; expected a number in [0, 1)",
        ),
        ("scl.log_base", 1, "scl.log_base: 1 is out of range; expected a number > 1"),
        ("lora.dropout", -0.1, "lora.dropout: -0.1 is out of range; expected a number in [0, 1)"),
        ("num_workers", -1, "num_workers: -1 is out of range; expected an integer >= 0"),
        ("corpus.synthetic_size", 0, "corpus.synthetic_size: 0 is out of range; expected an integer >= 1"),
        ("scl.learning_rate", float("nan"), "scl.learning_rate: nan is out of range; expected a number > 0"),
    ],
)
def test_out_of_range_messages(tmp_path: Path, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, {key: value})
    assert str(error.value) == f"{tmp_path / 'config.yaml'}: {message}"


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        ({"translate.warmup_ratio": 0, "scl.label_smoothing": 0.0}, lambda c: c.scl.label_smoothing == 0.0),
        ({"scl.label_smoothing": None}, lambda c: c.scl.label_smoothing is None),
        ({"video.resize": None}, lambda c: c.video.resize is None),
        ({"video.image_size": 32, "video.resize": 32}, lambda c: c.video.resize == 32),
        ({"corpus.synthetic_size": 50}, lambda c: c.corpus.synthetic_size == 50),
        ({"scl.contrastive_weight": 0}, lambda c: c.scl.contrastive_weight == 0.0),
        ({"reference.epochs": 6, "reference.snapshot_interval": 5}, lambda c: c.reference.epochs == 6.0),
    ],
)
def test_values_on_the_edge_of_a_range_are_accepted(tmp_path: Path, overrides: dict, check: Any) -> None:
    assert check(load(tmp_path, overrides))


# --- choices ----------------------------------------------------------------------------------
def choices(hint: Any) -> set[str]:
    return {value for option in typing.get_args(hint) or (hint,) for value in typing.get_args(option)}


@pytest.mark.parametrize(
    ("literal", "source"),
    [
        (recipe_config.ModelPreset, set(PRESETS)),
        (recipe_config.SyntheticSize, set(SIZE_PRESETS)),
        (recipe_config.LrScheduler, {kind.value for kind in transformers.SchedulerType}),
        (recipe_config.CurriculumSchedule, set(SCHEDULES)),
        (recipe_config.BatchSamplerName, {kind.value for kind in BatchSamplers} - {"auto"}),
        (recipe_config.ContrastiveLossName, {kind.value for kind in ContrastiveLosses} - {"auto"}),
    ],
    ids=["preset", "synthetic_size", "lr_scheduler", "schedule", "batch_sampler", "contrastive_loss"],
)
def test_written_out_choices_equal_their_source_of_truth(literal: Any, source: set[str]) -> None:
    assert set(typing.get_args(literal)) == source


def test_string_fields_with_a_fixed_set_are_choices() -> None:
    free = {key for key, hint, _ in leaf_fields() if hint in (str, str | None)}
    # names, paths and language codes are free text; everything else is a Literal
    assert free == {
        "corpus.path",
        "corpus.language",
        "model.backbone",
        "model.text_model",
        "model.tokenizer",
        "model.tgt_lang",
        "video.features",
    }
    for key in ("model.preset", "scl.schedule", "scl.batch_sampler", "scl.contrastive_loss"):
        hint = dict((k, h) for k, h, _ in leaf_fields())[key]
        assert typing.get_origin(hint) is Literal, key
    for key, hint, _ in leaf_fields():
        if key.endswith("lr_scheduler") or key.endswith("contrastive_loss"):
            assert typing.get_origin(hint) is Literal, key


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("model.preset", "huge", "['tiny', 'small', 'gfslt', 'paper']"),
        ("scl.schedule", "cubic", "['log', 'linear', 'sqrt', 'easy', 'hard']"),
        ("scl.batch_sampler", "hardest", "['random', 'no_duplicates', 'ps_curriculum']"),
        ("scl.contrastive_loss", "triplet", "['selective', 'clip']"),
        ("reference.contrastive_loss", "triplet", "['selective', 'clip']"),
        ("translate.lr_scheduler", "cosin", "['linear', 'cosine',"),
    ],
)
def test_a_value_outside_a_choice_lists_the_choices(
    tmp_path: Path, key: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, {key: value})
    assert str(error.value).startswith(
        f"{tmp_path / 'config.yaml'}: {key}: {value!r} is not one of {allowed}"
    )


def test_a_wrong_type_names_the_dotted_key_and_the_expected_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scl\.label_smoothing: expected float or null, got 'high'$"):
        load(tmp_path, {"scl.label_smoothing": "high"})
    with pytest.raises(
        ConfigError, match=r"corpus\.synthetic_size: expected one of \[.*\] or int, got 'huge'"
    ):
        load(tmp_path, {"corpus.synthetic_size": "huge"})
    with pytest.raises(ConfigError, match=r"scl\.batch_size: expected int, got True"):
        load(tmp_path, {"scl.batch_size": True})


# --- rules between fields ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"video.image_size": 224, "video.resize": 128},
            "video.resize: 128 is below video.image_size 224; expected null (no resize) or a number >= 224",
        ),
        (
            {"reference.epochs": 5, "reference.snapshot_interval": 5},
            "reference.epochs: 5 gives one snapshot at reference.snapshot_interval 5; Pair Selection "
            "needs 2: expected reference.epochs > reference.snapshot_interval",
        ),
        (
            {"scl.contrastive_weight": 0, "scl.translation_weight": 0},
            "scl.contrastive_weight and scl.translation_weight are both 0; expected at least one > 0",
        ),
        (
            {"corpus.kind": "manifest"},
            "corpus.path: missing; corpus.kind 'manifest' needs a manifest file (.csv, .tsv or .jsonl)",
        ),
        (
            {"scl.gradient_checkpointing": True},
            "scl.gradient_checkpointing: true needs model.overrides.freeze_batch_norm: true (the backbone is "
            "checkpointed too, and recomputing a training-mode BatchNorm would update its statistics twice)",
        ),
        (
            {"model.overrides": {"backbone_checkpointing": True, "freeze_batch_norm": True}},
            "model.overrides.backbone_checkpointing: not a model field; set <stage>.gradient_checkpointing="
            "true (e.g. scl.gradient_checkpointing), which checkpoints the backbone and the mBART layers",
        ),
    ],
)
def test_rules_between_fields(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, overrides)
    assert str(error.value) == f"{tmp_path / 'config.yaml'}: {message}"


def test_checkpointing_on_frame_features_needs_no_frozen_batch_norm(tmp_path: Path) -> None:
    """No backbone runs on frame features, so no BatchNorm could update its statistics twice."""
    config = load(tmp_path, {"video.features": "features", "scl.gradient_checkpointing": True})
    assert config.scl.gradient_checkpointing and "freeze_batch_norm" not in config.model.overrides


def test_a_synthetic_corpus_takes_no_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"corpus\.path: 'data/x' is not used by corpus.kind 'synthetic'"):
        load(tmp_path, {"corpus.path": "data/x"})


def test_validate_config_checks_a_config_built_in_python() -> None:
    assert validate_config(demo_config()) is not None and validate_config(demo_config(quick=True))
    config = demo_config(quick=True)
    config.scl.batch_size = 0
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value) == "recipe config: scl.batch_size: 0 is out of range; expected an integer >= 1"
    config = demo_config(quick=True)
    config.model.preset = "huge"
    with pytest.raises(ConfigError, match=r"recipe config: model\.preset: 'huge' is not one of"):
        validate_config(config)


@pytest.mark.parametrize("name", ["synthetic", "phoenix2014t", "csl_daily", "phoenix2014t_feature_twin"])
def test_the_shipped_configs_are_valid(name: str) -> None:
    validate_config(RecipeConfig.from_yaml(REPO / "configs" / f"{name}.yaml"))


def test_the_corpus_path_is_checked_with_what_it_should_hold(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        recipe_config.check_corpus_path("phoenix2014t", tmp_path / "TYPO", "c.yaml: corpus.path")
    assert str(error.value) == (
        f"c.yaml: corpus.path: {tmp_path / 'TYPO'} does not exist; expected the PHOENIX-2014-T release folder"
    )
    assert recipe_config.check_corpus_path("manifest", tmp_path, "k") == tmp_path


def test_a_run_recorded_before_a_key_existed_resumes_and_a_changed_value_does_not(tmp_path) -> None:
    from trainers.application.run_paths import RunPaths
    from trainers.application.run_setup import check_or_record_config

    paths = RunPaths(tmp_path / "run")
    config = RecipeConfig()
    check_or_record_config(config, paths, report=lambda message: None)
    recorded = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    del recorded["distributed_timeout_minutes"]  # as a run of an earlier release recorded it
    paths.config.write_text(yaml.safe_dump(recorded), encoding="utf-8")
    (paths.stage("reference") / "DONE").parent.mkdir(parents=True)
    (paths.stage("reference") / "DONE").write_text("{}", encoding="utf-8")
    check_or_record_config(config, paths, report=lambda message: None)  # resumes
    config.scl.epochs = 3.0
    with pytest.raises(ConfigError, match="holds a run started with a different config"):
        check_or_record_config(config, paths, report=lambda message: None)
