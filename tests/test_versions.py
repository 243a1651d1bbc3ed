"""The declared version range: one floor in three places, and the model code follows transformers' names."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from modeling_scl_slt.configuration_scl_slt import MIN_TRANSFORMERS_VERSION
from modeling_scl_slt.modeling_scl_slt import CACHE_FIELD, SclSltOutput

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("torch", "transformers", "datasets", "accelerate", "peft", "evaluate", "huggingface-hub")


def declared_floors() -> dict[str, str]:
    """``{package: minimum}`` from pyproject.toml's dependencies."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", requirement)
        assert match, f"dependency {requirement!r} should read NAME>=FLOOR[,<CAP]"
        floors[match.group(1)] = match.group(2)
    return floors


def ci_floor_pins() -> dict[str, str]:
    lines = (ROOT / ".ci" / "floor-constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): version.strip() for name, version in pins}


def same_release(declared: str, pinned: str) -> bool:
    """``5.17`` and ``5.17.0`` name the same release."""
    return release(declared) == release(pinned)


def release(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_ci_tests_exactly_the_declared_floors() -> None:
    floors, pins = declared_floors(), ci_floor_pins()
    for package in (*CHECKED, "protobuf"):
        assert package in pins, f"{package} has no pin in .ci/floor-constraints.txt"
        assert same_release(floors[package], pins[package]), (package, floors[package], pins[package])


def test_model_code_refuses_what_ci_does_not_test() -> None:
    assert same_release(declared_floors()["transformers"], MIN_TRANSFORMERS_VERSION)


def test_the_cache_field_is_the_one_transformers_declares() -> None:
    names = [field.name for field in dataclasses.fields(Seq2SeqLMOutput)]
    assert CACHE_FIELD in names
    assert {field.name for field in dataclasses.fields(SclSltOutput)} >= set(names)

    torch.manual_seed(0)
    model = SclSltForSignTranslation(SclSltConfig.from_preset("tiny")).eval()
    pixels = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        output = model(pixel_values=pixels, decoder_input_ids=torch.tensor([[31]]), use_cache=True)
        cache = output[CACHE_FIELD]
        assert isinstance(cache, Cache) and cache.get_seq_length() == 1
        # Feeding the cache back under transformers' own name continues the sequence.
        step = model(
            encoder_outputs=(output.encoder_last_hidden_state,),
            decoder_input_ids=torch.tensor([[5]]),
            use_cache=True,
            **{CACHE_FIELD: cache},
        )
        full = model(pixel_values=pixels, decoder_input_ids=torch.tensor([[31, 5]]))
    assert torch.allclose(step.logits[:, -1], full.logits[:, -1], atol=1e-5)
