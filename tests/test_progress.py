"""What a person watching a run sees: one bar per stage on a terminal, plain result lines elsewhere,
and no noise that looks like errors (generation-length warnings, missing tied keys, library bars)."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import huggingface_hub.utils
import pytest
import yaml
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as transformers_logging

from trainers.application.cli import main
from trainers.application.cli_parser import build_parser
from trainers.application.demo import QUICK_NOTE, demo_config
from trainers.application.evaluation import set_trainer_generation_defaults
from trainers.application.recipe import recipe_step_title, stage_summary
from trainers.training import progress
from trainers.training.progress import (
    StageProgressCallback,
    format_duration,
    progress_display,
    progress_enabled,
)
from trainers.training.trainer import SclSltTrainer

from .test_trainer import arguments, collators, tiny_corpus, tiny_model

NOISE = (
    "seem to have been set",  # max_new_tokens beside a max_length
    "missing keys",  # a tied lm_head.weight reported missing
    "Loading weights",
    "Writing model shards",
    "Generating train split",
    "{'loss'",  # the Trainer's log dictionaries
    "{'train_runtime'",
    "{'eval_",
)


@pytest.fixture(scope="module")
def tokenizer():
    from trainers.application.tokenization import train_tokenizer

    from .test_trainer import SENTENCES

    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


def translate_trainer(tmp_path: Path, tokenizer, callback: StageProgressCallback) -> SclSltTrainer:
    """Stage translate on 8 clips, 2 epochs, evaluated by generation every 2 steps."""
    model = tiny_model(tokenizer)
    set_trainer_generation_defaults(model, num_beams=1, max_new_tokens=6)
    train_collator, eval_collator = collators(tokenizer)
    trainer = SclSltTrainer(
        model=model,
        args=arguments(
            tmp_path,
            stage="translate",
            num_train_epochs=2,
            predict_with_generate=True,
            eval_strategy="steps",
            eval_steps=2,
            per_device_eval_batch_size=2,  # several generation batches per evaluation
            metric_language="en",
        ),
        train_dataset=tiny_corpus(),
        eval_dataset=tiny_corpus(4),
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def transformers_messages() -> tuple[list[str], logging.Handler]:
    messages: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    return messages, handler


# --- when bars are drawn -----------------------------------------------------------------------
def test_bars_need_a_terminal_and_quiet_switches_them_off(monkeypatch) -> None:
    monkeypatch.setattr(progress, "attached_to_terminal", lambda: False)
    assert not progress_enabled()
    with progress_display(enabled=True):
        assert progress_enabled()
    monkeypatch.setattr(progress, "attached_to_terminal", lambda: True)
    assert progress_enabled()
    with progress_display(enabled=False):  # --quiet
        assert not progress_enabled()
    with progress_display():
        assert progress_enabled()


def test_progress_display_switches_the_library_bars_off_and_restores_them() -> None:
    def states() -> tuple[bool, bool, bool]:
        return (
            transformers_logging.is_progress_bar_enabled(),
            datasets.is_progress_bar_enabled(),
            not huggingface_hub.utils.are_progress_bars_disabled(),
        )

    before = states()
    with progress_display():
        assert states() == (False, False, False)
    assert states() == before


def test_demo_and_train_take_quiet() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--quiet"]).quiet
    assert parser.parse_args(["train", "c.yaml", "--output-dir", "d", "--quiet"]).quiet
    assert not parser.parse_args(["demo"]).quiet


# --- the stage bar -----------------------------------------------------------------------------
def test_a_stage_bar_says_what_runs_how_far_and_how_long_is_left(tmp_path, tokenizer, capsys) -> None:
    reports: list[str] = []
    callback = StageProgressCallback(recipe_step_title("translate"), "translate", reports.append)
    with progress_display(enabled=True):
        translate_trainer(tmp_path, tokenizer, callback).train()
    out, err = capsys.readouterr()
    assert "stage 3 of 4: translate" in err
    assert "/4 steps" in err and " elapsed, " in err and " left" in err and "loss " in err
    assert "evaluating on dev" in err  # the generation bar of each evaluation
    assert not [noise for noise in NOISE if noise in out + err]
    assert [line for line in reports if line.startswith("stage translate: epoch ")] == [
        line for line in reports if "dev BLEU-4" in line
    ] and len(reports) == 2  # one result line per evaluation, nothing else
    assert set(callback.summary) >= {"train_runtime", "train_loss"}


def test_without_a_terminal_a_stage_prints_only_its_result_lines(tmp_path, tokenizer, capsys) -> None:
    reports: list[str] = []
    callback = StageProgressCallback(recipe_step_title("translate"), "translate", reports.append)
    messages, handler = transformers_messages()
    try:
        translate_trainer(tmp_path, tokenizer, callback).train()
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    out, err = capsys.readouterr()
    assert "stage 3 of 4" not in err and "steps" not in err  # no bar: stderr is not a terminal
    assert not [noise for noise in NOISE if noise in out + err + "\n".join(messages)]
    assert len(reports) == 2 and all("dev BLEU-4" in line for line in reports)


def test_trainer_evaluations_leave_no_conflicting_generation_length(tmp_path, tokenizer) -> None:
    """The Seq2SeqTrainer fills max_length=20 into the model's generation config after its first
    generation batch; the length is given as max_length alone, so nothing conflicts with it."""
    callback = StageProgressCallback("t", "translate", lambda _: None)
    trainer = translate_trainer(tmp_path, tokenizer, callback)
    messages, handler = transformers_messages()
    try:
        trainer.train()
        trainer.evaluate()
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert not [m for m in messages if "max_length" in m], messages
    assert (
        trainer.model.generation_config.max_length == 7
        and trainer.model.generation_config.max_new_tokens is None
    )


def test_report_lines_of_the_recipe() -> None:
    assert [recipe_step_title(step) for step in ("reference", "scl", "translate", "evaluation")] == [
        "stage 1 of 4: reference",
        "stage 2 of 4: scl",
        "stage 3 of 4: translate",
        "stage 4 of 4: evaluation",
    ]
    summary = stage_summary(
        "scl", {"train_runtime": 75.2, "train_loss": 2.5}, {"eval_video_to_text_r1": 50.0}
    )
    assert summary.startswith("stage scl: done in 1 min 15 s, train loss 2.500, dev R@1 video→text 50.0")
    assert format_duration(8.44) == "8.4 s" and format_duration(3725) == "1 h 2 min"


# --- a whole run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_tiny_recipe_run_logs_steps_and_results_without_noise(tmp_path, capfd) -> None:
    config = demo_config(quick=True)
    config.model.preset = "tiny"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    assert main(["train", str(config_file), "--output-dir", str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capfd.readouterr()
    log = out + err
    assert not [noise for noise in NOISE if noise in log], log
    for line in (
        "stage reference: 1 of 4, 2 epochs",
        "stage scl: 2 of 4, 2 epochs",
        "stage translate: 3 of 4, 12 epochs",
        "evaluation: 4 of 4",
        "pair selection: dense delta scores from 2 snapshots; negative pairs H->L",
    ):
        assert line in out, (line, out)
    assert out.count("stage translate: epoch ") == 3  # one line per evaluation (every 4 epochs)
    assert "%|" not in log  # no progress bar anywhere


def test_the_quick_demo_says_it_checks_the_path_not_the_quality() -> None:
    assert "say nothing about quality" in QUICK_NOTE


def test_the_demo_log_ends_naming_the_scores_the_model_and_the_trajectory_figure(
    tmp_path, monkeypatch
) -> None:
    from trainers.application import demo

    metrics = {"validation": {"bleu4": 70.0}, "test": {"bleu4": 60.0}}
    monkeypatch.setattr(demo, "run_recipe", lambda *args, **kwargs: metrics)
    monkeypatch.setattr(demo, "translate_one_test_video", lambda paths: ("rain", "rain"))
    lines: list[str] = []
    demo.run_and_show(
        tmp_path, quick=False, report=lambda text: lines.extend(text.splitlines()), overwrite=False
    )
    assert lines[0] == "dev BLEU-4 70.00, test BLEU-4 60.00"
    assert lines[-3:] == [
        f"scores: {tmp_path / 'metrics.json'}",
        f"model: {tmp_path / 'model'} (scl-slt translate {tmp_path / 'model'} VIDEO)",
        f"trajectory figure: {tmp_path / 'trajectories.png'}",
    ]


# --- long steps outside training -----------------------------------------------------------------
def test_corpus_generation_shows_a_bar_only_when_progress_is_on(tmp_path, monkeypatch, capsys) -> None:
    from trainers.application.recipe_config import CorpusSection
    from trainers.application.run_setup import generate_synthetic_corpus

    monkeypatch.setattr(progress, "attached_to_terminal", lambda: False)
    section = CorpusSection(kind="synthetic", synthetic_size=4, synthetic_options={"frame_size": 16})
    generate_synthetic_corpus(section, tmp_path / "quiet")
    assert "generating the synthetic corpus" not in capsys.readouterr().err
    with progress_display(enabled=True):
        generate_synthetic_corpus(section, tmp_path / "shown")
    err = capsys.readouterr().err
    assert "generating the synthetic corpus" in err and "12/12" in err  # 4 + 4 + 4 videos


def test_gloss_rendering_shows_a_bar_when_asked(tmp_path, capsys) -> None:
    from datasets_scripts import GlossRow, make_gloss_rendered_corpus

    rows = {
        split: [GlossRow(f"{split}{i}", ("REGEN", "MORGEN"), "morgen regen", 6) for i in range(2)]
        for split in ("train", "validation", "test")
    }
    make_gloss_rendered_corpus(rows, tmp_path, image_size=8, show_progress=True)
    err = capsys.readouterr().err
    assert "rendering the gloss signs" in err and "6/6" in err


def test_tokenizer_training_draws_no_bar_of_its_own(monkeypatch) -> None:
    from trainers.application import tokenization

    seen: list[dict] = []
    real = tokenization.trainers.UnigramTrainer

    def recording(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(tokenization.trainers, "UnigramTrainer", recording)
    tokenization.train_tokenizer(["morgen regen im norden"] * 4, "de_DE", vocab_size=40)
    assert seen and seen[0]["show_progress"] is False
