"""The ``sign-language-translation`` pipeline: inputs, batching, generation arguments, remote loading, errors.

The tiny model of ``tests/_tiny_models.py`` (word-level tokenizer trained at test time, weights
re-drawn so that translations differ between clips and comparisons mean something).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, pipeline

import modeling_scl_slt
from modeling_scl_slt import SclSltForSignTranslation, SignLanguageTranslationPipeline, VideoTransform
from modeling_scl_slt.pipeline_scl_slt import custom_pipeline_entry
from modeling_scl_slt.video_stream import frame_folder_names
from tests._corpus_builders import write_frames, write_video
from tests._isolation import run_without_project
from tests._tiny_models import SENTENCES, SMALL_FRAMES, random_clip, save_video_dependent_model
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

TASK = "sign-language-translation"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model + tokenizer whose translations depend on the video."""
    return save_video_dependent_model(
        tmp_path_factory.mktemp("pipeline") / "model", SMALL_FRAMES, max_new_tokens=8
    )


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir: Path) -> tuple[SclSltForSignTranslation, Any]:
    model = SclSltForSignTranslation.from_pretrained(model_dir).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def translator(model_dir: Path) -> SignLanguageTranslationPipeline:
    return pipeline(TASK, model=str(model_dir), trust_remote_code=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-frame mp4 (fewer than max_frames) and 12 PNGs ``images1.png`` … ``images12.png``.

    The PNG names sort differently as text and as numbers.
    """
    root = tmp_path_factory.mktemp("media")
    write_video(root / "clip.mp4", 20, size=(32, 24))
    write_frames(root / "frames", 12, pattern="images{}.png")
    return {"video": root / "clip.mp4", "frames": root / "frames"}


def expected_text(model_and_tokenizer: tuple, frames: Any, **generate_kwargs: Any) -> str:
    """What ``model.generate`` gives for the clip preprocessed by the evaluation transform."""
    model, tokenizer = model_and_tokenizer
    clip = VideoTransform(train=False, **SMALL_FRAMES)(frames)[None]  # (1, T, 3, S, S)
    with torch.no_grad():
        ids = model.generate(pixel_values=clip, attention_mask=torch.ones(clip.shape[:2]), **generate_kwargs)
    return tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def decode_video(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def folder_frames(folder: Path, count: int) -> list[Image.Image]:
    return [Image.open(folder / f"images{index}.png").convert("RGB") for index in range(1, count + 1)]


# --- the saved folder ----------------------------------------------------------------------------


def test_saved_folder_carries_the_pipeline(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    assert config["custom_pipelines"] == {TASK: custom_pipeline_entry()}
    assert custom_pipeline_entry()["impl"] == "pipeline_scl_slt.SignLanguageTranslationPipeline"
    assert config["video_preprocessing"] == SMALL_FRAMES
    assert {"pipeline_scl_slt.py", "video_processing.py", "video_stream.py", "video_windows.py"} <= {
        path.name for path in model_dir.iterdir()
    }


def test_pipeline_save_pretrained_writes_the_same_entry(model_and_tokenizer: tuple, tmp_path: Path) -> None:
    model, tokenizer = model_and_tokenizer
    pipeline(TASK, model=model, tokenizer=tokenizer).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["custom_pipelines"] == {TASK: custom_pipeline_entry()}
    assert (tmp_path / "pipeline_scl_slt.py").is_file() and (tmp_path / "video_processing.py").is_file()


def test_folder_by_path_works_in_process_without_remote_code(
    model_dir: Path, model_and_tokenizer: tuple
) -> None:
    # After `import modeling_scl_slt` the registered task serves the folder: no remote code.
    translate = pipeline(TASK, model=str(model_dir))
    assert type(translate) is SignLanguageTranslationPipeline
    assert type(translate.model).__module__ == "modeling_scl_slt.modeling_scl_slt"
    clip = np.random.default_rng(0).integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    remote = pipeline(TASK, model=str(model_dir), trust_remote_code=True)
    assert translate(clip) == remote(clip)


def test_transform_comes_from_the_config(translator: SignLanguageTranslationPipeline) -> None:
    # The folder's copy of VideoTransform is another class object: compare the settings.
    assert vars(translator.video_transform) == vars(VideoTransform(train=False, **SMALL_FRAMES))


# --- input kinds ---------------------------------------------------------------------------------


def test_uint8_array(translator: SignLanguageTranslationPipeline, model_and_tokenizer: tuple) -> None:
    clip = random_clip(24, seed=1)  # max_frames: the longest clip read in one window
    assert translator(clip) == [{"translation_text": expected_text(model_and_tokenizer, clip)}]


def test_a_clip_longer_than_max_frames_is_refused_not_squeezed(
    translator: SignLanguageTranslationPipeline,
) -> None:
    assert_one_value_error(
        lambda: translator(random_clip(25, seed=1)), "shape (25, 24, 21, 3)", "24 frames", "chunk_length_s"
    )


def test_video_file(
    translator: SignLanguageTranslationPipeline, model_and_tokenizer: tuple, media: dict[str, Path]
) -> None:
    expected = expected_text(model_and_tokenizer, decode_video(media["video"]))
    assert translator(media["video"]) == [{"translation_text": expected}]
    assert translator(str(media["video"])) == [{"translation_text": expected}]


def test_frame_folder(
    translator: SignLanguageTranslationPipeline, model_and_tokenizer: tuple, media: dict[str, Path]
) -> None:
    expected = expected_text(model_and_tokenizer, folder_frames(media["frames"], 12))
    assert translator(media["frames"]) == [{"translation_text": expected}]


def test_frame_folder_is_read_in_numeric_order(media: dict[str, Path]) -> None:
    assert frame_folder_names(media["frames"]) == [f"images{index}.png" for index in range(1, 13)]


def test_model_object_works_without_remote_code(model_and_tokenizer: tuple) -> None:
    model, tokenizer = model_and_tokenizer
    translate = pipeline(TASK, model=model, tokenizer=tokenizer)
    assert type(translate) is SignLanguageTranslationPipeline  # the installed class, from the registry
    clip = random_clip(11, seed=2)
    assert translate(clip) == [{"translation_text": expected_text(model_and_tokenizer, clip)}]


# --- batching and generation arguments -----------------------------------------------------------


def test_batch_of_different_lengths_matches_one_by_one(
    translator: SignLanguageTranslationPipeline, media: dict[str, Path]
) -> None:
    videos = [random_clip(6, seed=3), random_clip(17, seed=4), media["video"]]  # 6, 17 and 20 frames
    one_by_one = [translator(video) for video in videos]
    assert translator(videos, batch_size=2) == one_by_one  # a full batch, then a partial one
    assert len({result[0]["translation_text"] for result in one_by_one}) > 1  # the check can fail


def test_generation_arguments_pass_through(
    translator: SignLanguageTranslationPipeline, model_and_tokenizer: tuple, model_dir: Path
) -> None:
    clip = random_clip(13, seed=5)
    full = translator(clip)[0]["translation_text"]
    short = translator(clip, max_new_tokens=2)[0]["translation_text"]
    assert short == expected_text(model_and_tokenizer, clip, max_new_tokens=2)
    assert len(short.split()) <= 2 < len(full.split())
    beams = translator(clip, num_beams=3, max_new_tokens=5)
    assert beams == [
        {"translation_text": expected_text(model_and_tokenizer, clip, num_beams=3, max_new_tokens=5)}
    ]
    at_init = pipeline(TASK, model=str(model_dir), trust_remote_code=True, max_new_tokens=2)
    assert at_init(clip)[0]["translation_text"] == short


def test_default_length_is_capped_by_the_decoder_positions(model_dir: Path) -> None:
    translate = pipeline(TASK, model=str(model_dir), trust_remote_code=True)
    translate.model.generation_config.max_new_tokens = None  # no length from the model either
    longest = translate.model.config.text_config.max_position_embeddings - 1
    assert longest < 128  # the tiny preset: the cap, not the pipeline's default, applies
    assert translate.default_length({}) == {"max_new_tokens": longest}
    assert translate.default_length({"max_length": 5}) == {}
    assert translate.default_length({"max_new_tokens": 3}) == {}
    generic = translate.model.generation_config.max_length
    translate.model.generation_config.max_length = 30  # a length the model chose: it is followed
    assert translate.default_length({}) == {}
    translate.model.generation_config.max_length = generic
    clip = random_clip(9, seed=7)
    expected = expected_text_at(translate, clip, max_new_tokens=longest)
    assert translate(clip) == [{"translation_text": expected}]


def expected_text_at(translate: SignLanguageTranslationPipeline, frames: Any, **generate_kwargs: Any) -> str:
    return expected_text((translate.model, translate.tokenizer), frames, **generate_kwargs)


def test_num_return_sequences_gives_one_dict_each(translator: SignLanguageTranslationPipeline) -> None:
    results = translator([random_clip(8, seed=6)] * 3, batch_size=2, num_beams=3, num_return_sequences=2)
    assert [len(result) for result in results] == [2, 2, 2]


# --- wrong inputs: one clear ValueError each -----------------------------------------------------


def assert_one_value_error(call: Callable[[], Any], *fragments: str) -> None:
    """``call`` raises a single (unchained) ValueError whose message holds every fragment."""
    with pytest.raises(ValueError) as caught:
        call()
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    for fragment in fragments:
        assert fragment in str(error)


def test_missing_path(translator: SignLanguageTranslationPipeline, tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    assert_one_value_error(lambda: translator(missing), str(missing), "does not exist", "video file")


def test_array_of_wrong_shape(translator: SignLanguageTranslationPipeline) -> None:
    assert_one_value_error(
        lambda: translator(np.zeros((8, 24, 21), dtype=np.uint8)), "shape (8, 24, 21)", "(T, H, W, 3)"
    )


def test_array_of_wrong_dtype(translator: SignLanguageTranslationPipeline) -> None:
    assert_one_value_error(
        lambda: translator(np.zeros((8, 24, 21, 3), dtype=np.float32)), "dtype float32", "uint8"
    )


def test_empty_video_file(translator: SignLanguageTranslationPipeline, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_one_value_error(lambda: translator(empty), str(empty), "empty")


def test_file_that_is_not_a_video(translator: SignLanguageTranslationPipeline, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert_one_value_error(lambda: translator(text), str(text), "cannot be decoded")


def test_empty_frame_folder(translator: SignLanguageTranslationPipeline, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    assert_one_value_error(lambda: translator(tmp_path), str(tmp_path), "holds no images", ".png")


def test_too_few_frames(translator: SignLanguageTranslationPipeline, tmp_path: Path) -> None:
    assert_one_value_error(
        lambda: translator(random_clip(3, seed=0)), "shape (3, 24, 21, 3)", "3 frames", "4"
    )
    write_frames(tmp_path / "short", 2)
    assert_one_value_error(lambda: translator(tmp_path / "short"), "frame folder", "2 frames", "at least 4")


def test_unsupported_input_type(translator: SignLanguageTranslationPipeline) -> None:
    assert_one_value_error(lambda: translator(42), "type int", "(T, H, W, 3) uint8 array")


def test_error_inside_a_batch_names_the_input(
    translator: SignLanguageTranslationPipeline, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.mp4"
    assert_one_value_error(
        lambda: translator([random_clip(8, seed=0), missing], batch_size=2), str(missing), "does not exist"
    )


# --- remote code: a fresh process that cannot import the project ---------------------------------

LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import pipeline

    folder, clips = sys.argv[1], np.load(sys.argv[2])
    translate = pipeline("sign-language-translation", model=folder, trust_remote_code=True)
    inferred = pipeline(model=folder, trust_remote_code=True)
    print(json.dumps({
        "class_module": type(translate).__module__,
        "model_module": type(translate.model).__module__,
        "single": translate(clips[0]),
        "batch": translate([clips[0], clips[1, :7]], batch_size=2),
        "inferred_task": inferred.task,
    }))
    """
)


def test_fresh_process_loads_the_pipeline_with_remote_code(
    translator: SignLanguageTranslationPipeline, model_dir: Path, tmp_path: Path
) -> None:
    clips = np.stack([random_clip(10, seed=7), random_clip(10, seed=8)])
    np.save(tmp_path / "clips.npy", clips)
    result = run_without_project(
        LOADER, str(model_dir), str(tmp_path / "clips.npy"), workdir=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class_module"].startswith("transformers_modules.")
    assert loaded["model_module"].startswith("transformers_modules.")
    assert loaded["inferred_task"] == TASK
    assert loaded["single"] == translator(clips[0])
    assert loaded["batch"] == [translator(clips[0]), translator(clips[1, :7])]


def test_package_exports() -> None:
    assert modeling_scl_slt.PIPELINE_TASK == TASK


def test_pipeline_over_a_lora_adapter_folder(model_dir: Path, tmp_path: Path) -> None:
    from trainers.training.lora import apply_lora

    base = SclSltForSignTranslation.from_pretrained(model_dir)
    lora = apply_lora(base)
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:  # LoRA starts as a no-op: make the adapter change the outputs
                parameter.normal_(std=0.5)
    lora.peft_config["default"].base_model_name_or_path = str(model_dir)
    lora.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp_path / "adapter")
    clips = [random_clip(12, seed=seed) for seed in range(4)]

    adapted = pipeline(TASK, model=str(tmp_path / "adapter"))([clip.copy() for clip in clips])
    merged_model = lora.merge_and_unload().eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    merged = pipeline(TASK, model=merged_model, tokenizer=tokenizer)([clip.copy() for clip in clips])
    plain = pipeline(TASK, model=str(model_dir))([clip.copy() for clip in clips])
    assert adapted == merged
    assert adapted != plain, "the adapter did not change any translation: the test would be vacuous"


def test_a_folder_without_tokenizer_is_refused_with_how_to_add_one(tmp_path: Path) -> None:
    model = SclSltForSignTranslation(
        config_for_tokenizer("tiny", train_tokenizer(list(SENTENCES), "en_XX", model="wordlevel"), "en_XX")
    )
    model.save_pretrained(tmp_path / "model")
    with pytest.raises(ValueError) as error:
        pipeline(TASK, model=str(tmp_path / "model"))
    message = str(error.value)
    assert "has no tokenizer" in message and "tokenizer.save_pretrained" in message
    assert "sentencepiece" not in message and "tiktoken" not in message
