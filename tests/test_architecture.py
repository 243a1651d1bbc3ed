"""The layout of the project: the method stands alone, arguments parse, stages are data, units stay small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from transformers import HfArgumentParser

import trainers
from trainers.training.arguments import BatchSamplers, ContrastiveLosses, SclSltTrainingArguments
from trainers.training.stages import STAGES, get_stage

ROOT = Path(__file__).resolve().parents[1]


def test_the_method_imports_nothing_of_the_application() -> None:
    script = (
        "import sys, trainers.method\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('trainers.') and not m.startswith("
        "('trainers.method', 'trainers.metrics')))\n"
        "heavy = [m for m in ('transformers.trainer', 'peft', 'datasets', 'evaluate') if m in sys.modules]\n"
        "print(loaded, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


def test_every_exported_name_resolves_from_the_top_package() -> None:
    for name in trainers.__all__:
        assert getattr(trainers, name) is not None, name


def test_hf_argument_parser_builds_a_command_line_from_the_arguments(tmp_path) -> None:
    parser = HfArgumentParser(SclSltTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            *("--output_dir", str(tmp_path)),
            *("--stage", "reference", "--batch_sampler", "no_duplicates"),
            *("--contrastive_loss", "clip", "--curriculum_schedule", "sqrt", "--no_avoid_duplicate_texts"),
        ]
    )
    assert args.stage == "reference" and args.curriculum_schedule == "sqrt"
    assert BatchSamplers(args.batch_sampler) is BatchSamplers.NO_DUPLICATES
    assert ContrastiveLosses(args.contrastive_loss) is ContrastiveLosses.CLIP
    assert args.avoid_duplicate_texts is False
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--batch_sampler", "hardest"])


def test_stages_are_data() -> None:
    assert list(STAGES) == ["reference", "scl", "translate"]
    reference, scl, translate = (get_stage(name) for name in STAGES)
    assert (reference.contrastive_loss, reference.translation_loss, reference.takes_snapshots) == (
        True,
        False,
        True,
    )
    assert (scl.contrastive_loss, scl.translation_loss) == (True, True)
    assert scl.default_batch_sampler is BatchSamplers.PS_CURRICULUM
    assert translate.default_batch_sampler is None and translate.evaluates_by_generation
    with pytest.raises(ValueError, match="stage must be one of"):
        get_stage("pretrain")
