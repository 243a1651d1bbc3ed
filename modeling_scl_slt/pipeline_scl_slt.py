"""The ``sign-language-translation`` pipeline: a sign language video in, a sentence out.

This file travels to the Hub with the model (``trust_remote_code``): it imports only stdlib,
numpy, torch, transformers and its sibling files. PyAV (video files) and PIL (frame folders)
are imported only when such an input arrives.

Preprocessing is the evaluation transform the model was trained with:
``VideoTransform(train=False, **model.config.video_preprocessing)`` (the same code as training).
``preprocess`` only picks the frames (uint8); the model resizes, crops and normalises them on its
device, through the same function as training and evaluation (``SclSltVideoEncoder``).

Generated ids become sentences one way everywhere (evaluation, the Trainer's metrics, this
pipeline): :func:`decode_generated`. ``generate()`` returns every sequence with the tokens that
started decoding: the decoder start token (mBART-cc25 style: the target-language code, e.g.
``de_DE``) and, where the generation config forces a first token, that one too (mBART-50 style:
``</s>`` then the language code). The mBART tokenizers under transformers 5 do not count the
language codes as special tokens, so ``decode(..., skip_special_tokens=True)`` would keep them;
:func:`decode_generated` drops those leading tokens first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence, Sized
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, GenerationConfig, Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .video_processing import VideoTransform, pad_clips, transform_from_settings, uniform_frame_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
EXPECTED_INPUT = "a video file, a folder of frame images or a (T, H, W, 3) uint8 array"
# The collator's longest training target: the pipeline's default generation length.
DEFAULT_MAX_NEW_TOKENS = 128
# transformers' own default (None in 5.17 and 5.24; generate then applies 20): no length chosen.
GENERIC_MAX_LENGTH = GenerationConfig().max_length

VideoInput = str | os.PathLike | np.ndarray | torch.Tensor
# Files of which at least one is in every saved tokenizer folder.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "spiece.model")


def custom_pipeline_entry() -> dict[str, Any]:
    """The ``config.custom_pipelines`` entry of this task, as ``Pipeline.save_pretrained`` writes it.

    ``pt`` names a ``transformers`` auto class: a loading process looks it up in ``transformers``.
    """
    impl = f"{SignLanguageTranslationPipeline.__module__.rsplit('.', 1)[-1]}.SignLanguageTranslationPipeline"
    return {"impl": impl, "pt": ["AutoModelForSeq2SeqLM"], "type": "multimodal"}


class SignLanguageTranslationPipeline(Pipeline):
    """Translate sign language videos with an SCL-SLT model.

    Inputs (one, or a list of them as a batch):

    - a video file path (``str`` or ``Path``; any format FFmpeg reads, decoded with PyAV);
    - a folder of frame images (``.png``, ``.jpg``, …), read in numeric order of the file names
      (``images2.png`` before ``images10.png``);
    - a ``(T, H, W, 3)`` uint8 array (numpy or torch), RGB.

    Each clip needs at least ``model.config.temporal_downsampling`` (4) frames. Generation
    arguments (``num_beams``, ``max_new_tokens``, …) pass through to ``model.generate``, given to
    :func:`transformers.pipeline` or to the call. ``batch_size > 1`` pads clips of different
    lengths in time, which gives the same translations as one clip at a time.

    Returns, per input, ``[{"translation_text": str}]`` (one dict per returned sequence).

    Example::

        from transformers import pipeline

        # With the project installed: import it and load any saved folder.
        import modeling_scl_slt  # registers the task

        translate = pipeline("sign-language-translation", model="path/to/model")
        translate("clip.mp4", num_beams=4)  # [{"translation_text": "..."}]

        # Anywhere else (the folder's config declares the pipeline, ``custom_pipelines``):
        translate = pipeline("sign-language-translation", model="path/to/model", trust_remote_code=True)
    """

    # None: transformers tries to load the folder's tokenizer and passes None when that fails, so
    # that a folder without one gets a plain message (``__init__``) instead of transformers' guess
    # that sentencepiece or tiktoken is missing.
    _load_tokenizer = None
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    # The base class's handling of generation arguments differs between transformers releases (and
    # lives in private attributes); this pipeline does its own: every keyword that is not a
    # pipeline argument goes to ``generate`` (see ``_sanitize_parameters`` and ``_forward``).
    _pipeline_calls_generate = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            raise missing_tokenizer_error(str(getattr(self.model, "name_or_path", "") or "the model"))
        self.video_transform = evaluation_transform(getattr(self.model.config, "video_preprocessing", None))
        self.min_frames = int(self.model.config.temporal_downsampling)

    def get_inference_context(self) -> Any:
        """``torch.inference_mode`` around ``_forward`` (the base class uses ``torch.no_grad``).

        Nothing of a translation call takes part in autograd later, so the version counters and
        view tracking that ``no_grad`` still maintains are skipped.
        """
        return torch.inference_mode

    def __call__(self, videos: VideoInput | list[VideoInput], **kwargs: Any) -> Any:
        """Translate one video (→ ``[{"translation_text": str}]``) or a list of them (→ a list of those).

        ``kwargs``: ``batch_size``, ``num_workers`` and generation arguments of ``model.generate``.
        """
        if isinstance(videos, list) and not videos:
            return []
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(
        self, generate_kwargs: dict[str, Any] | None = None, **generation_params: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # Every other keyword is a generation argument: generate() rejects unknown ones itself.
        return {}, {**(generate_kwargs or {}), **generation_params}, {}

    def preprocess(self, video: VideoInput) -> dict[str, torch.Tensor]:
        """One input → ``pixel_values`` (1, T, 3, H, W) uint8 (the kept frames; the model transforms
        them) and ``attention_mask`` (1, T) long."""
        name = describe_input(video)
        frames = load_frames(video, self.video_transform.max_frames)
        if len(frames) < self.min_frames:
            raise ValueError(
                f"{name} has {len(frames)} frames; the model needs at least {self.min_frames} "
                f"(its temporal module downsamples time ×{self.min_frames})"
            )
        try:
            clip = self.video_transform.select_frames(frames)  # (T, 3, H, W) uint8
            self.video_transform.check_frame_size(*clip.shape[-2:])
        except (ValueError, TypeError) as error:
            raise ValueError(f"{name} cannot be preprocessed: {error}") from None
        return {
            "pixel_values": clip.unsqueeze(0),
            "attention_mask": torch.ones(1, clip.shape[0], dtype=torch.long),
        }

    def _forward(
        self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Generate: ``sequences`` (B, num_return_sequences, L) token ids."""
        pixel_values = model_inputs["pixel_values"]  # (B, T, 3, H, W) uint8, or float (B, T, 3, S, S)
        if pixel_values.is_floating_point():
            pixel_values = pixel_values.to(self.model.dtype)
        generate_kwargs = {**self.default_length(generate_kwargs), **generate_kwargs}
        generate_kwargs["return_dict_in_generate"] = False
        sequences = self.model.generate(
            pixel_values=pixel_values, attention_mask=model_inputs["attention_mask"], **generate_kwargs
        )  # (B * num_return_sequences, L)
        return {"sequences": sequences.reshape(pixel_values.shape[0], -1, sequences.shape[-1])}

    def default_length(self, generate_kwargs: dict[str, Any]) -> dict[str, int]:
        """``max_new_tokens`` unless the call or the model's generation config sets a length.

        The model's config sets one with ``max_new_tokens`` or with a ``max_length`` other than
        transformers' generic default (20 tokens), which would cut real sentences. The pipeline's default is
        :data:`DEFAULT_MAX_NEW_TOKENS`, capped by the decoder's position table (the start token
        takes one position).
        """
        if generate_kwargs.keys() & {"generation_config", "max_new_tokens", "max_length"}:
            return {}
        model_config = self.model.generation_config
        if model_config.max_new_tokens is not None or model_config.max_length != GENERIC_MAX_LENGTH:
            return {}
        longest = self.model.config.text_config.max_position_embeddings - 1
        return {"max_new_tokens": min(DEFAULT_MAX_NEW_TOKENS, longest)}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> list[dict[str, str]]:
        """Decode (1, num_return_sequences, L) ids → ``[{"translation_text": str}, …]``."""
        texts = decode_generated(self.tokenizer, model_outputs["sequences"][0], self.model.generation_config)
        return [{"translation_text": text} for text in texts]

    def get_iterator(
        self,
        inputs: Any,
        num_workers: int,
        batch_size: int,
        preprocess_params: dict[str, Any],
        forward_params: dict[str, Any],
        postprocess_params: dict[str, Any],
    ) -> PipelineIterator:
        """The base iterator with :func:`pad_clips_in_time` as collate (the default cannot pad videos)."""
        if isinstance(inputs, Sized):
            dataset: Any = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:  # an iterable cannot be split between workers
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)
        collate = partial(pad_clips_in_time, transform=self.video_transform)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


def missing_tokenizer_error(source: str) -> Exception:
    """The error for a model that came without a tokenizer (the pipeline needs one to decode ids).

    A local folder without tokenizer files gets a plain message saying how to add one. Otherwise
    (a Hub id, or a folder whose tokenizer files do not load) the tokenizer is loaded once more,
    so that the real reason is raised, named as the tokenizer's.
    """
    how = (
        "save the tokenizer the model was trained with into that folder (tokenizer.save_pretrained"
        f"({source!r}); a recipe run's model/ folder has it) or pass one: pipeline("
        "'sign-language-translation', model=..., tokenizer=...)"
    )
    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return ValueError(
            f"{source} has no tokenizer, and the pipeline needs one to turn ids into text: {how}"
        )
    try:
        AutoTokenizer.from_pretrained(source)
    except Exception as error:
        return ValueError(f"the tokenizer of {source} cannot be loaded ({error}); {how}")
    return ValueError(f"no tokenizer was given for {source}: {how}")


def evaluation_transform(settings: dict[str, Any] | None) -> VideoTransform:
    """``VideoTransform(train=False, **settings)``; ``settings`` is ``config.video_preprocessing``."""
    return transform_from_settings(settings, train=False)


def pad_clips_in_time(
    items: Sequence[dict[str, torch.Tensor]], transform: VideoTransform | None = None
) -> dict[str, torch.Tensor]:
    """Collate preprocessed inputs (each ``pixel_values`` (1, T_i, 3, H, W) uint8) into one batch.

    Returns ``pixel_values`` (B, T_max, 3, H, W) uint8 and ``attention_mask`` (B, T_max), real
    frames first. Clips of different frame sizes cannot share one uint8 tensor: such a batch is
    transformed here by ``transform`` (the function the model's device runs), giving float
    ``pixel_values`` (B, T_max, 3, S, S).
    """
    clips = [item["pixel_values"][0] for item in items]
    if transform is not None and len({tuple(clip.shape[1:]) for clip in clips}) > 1:
        clips = [transform.apply(clip[None])[0] for clip in clips]
    return pad_clips(clips)


def describe_input(video: Any) -> str:
    """How error messages name an input."""
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        kind = "frame folder" if path.is_dir() else "video file"
        return f"{kind} {str(path)!r}"
    if isinstance(video, np.ndarray | torch.Tensor):
        return f"video array of shape {tuple(video.shape)} and dtype {video.dtype}"
    return f"input of type {type(video).__name__}"


def load_frames(video: Any, max_frames: int) -> np.ndarray | torch.Tensor | list[Any]:
    """The frames of one input: a (T, H, W, 3) uint8 array, or RGB PIL images for a frame folder.

    Files are subsampled to ``max_frames`` while reading, with the transform's own choice of
    frames (:func:`uniform_frame_indices`), so that skipped frames are never converted to RGB.
    """
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        if path.is_dir():
            return read_frame_folder(path, max_frames)
        if path.is_file():
            return read_video_file(path, max_frames)
        raise ValueError(f"video input {str(path)!r} does not exist; expected {EXPECTED_INPUT}")
    if isinstance(video, np.ndarray | torch.Tensor):
        check_video_array(video)
        return video
    raise ValueError(f"unsupported video input of type {type(video).__name__}; expected {EXPECTED_INPUT}")


def check_video_array(video: np.ndarray | torch.Tensor) -> None:
    """Refuse arrays that are not (T, H, W, 3) uint8."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(
            f"video array of shape {tuple(video.shape)} is not a clip: expected a (T, H, W, 3) uint8 array"
        )
    expected_dtype = np.uint8 if isinstance(video, np.ndarray) else torch.uint8
    if video.dtype != expected_dtype:
        raise ValueError(
            f"video array of dtype {video.dtype} is not a clip: expected uint8 pixels, shape (T, H, W, 3)"
        )


def natural_key(file_name: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``images2.png`` < ``images10.png``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", file_name))


def read_frame_folder(folder: Path, max_frames: int) -> list[Any]:
    """The kept frames of a folder of images, in numeric file-name order, as RGB PIL images."""
    names = sorted(
        (
            entry.name
            for entry in os.scandir(folder)
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file()
        ),
        key=natural_key,
    )
    if not names:
        raise ValueError(f"frame folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading a folder of frame images needs Pillow: pip install pillow") from None
    frames = []
    for index in uniform_frame_indices(len(names), max_frames).tolist():
        try:
            with Image.open(folder / names[index]) as image:
                frames.append(image.convert("RGB"))
        except OSError as error:
            raise ValueError(
                f"frame {names[index]!r} of folder {str(folder)!r} cannot be read ({error})"
            ) from None
    return frames


def read_video_file(path: Path, max_frames: int) -> np.ndarray:
    """The kept frames of a video file decoded with PyAV: (T', H, W, 3) uint8 RGB.

    Every frame is decoded (the frame count in the container's metadata is not reliable), but only
    the ``min(T, max_frames)`` kept ones are converted to RGB — the frames that decoding the whole
    clip and then applying the transform would keep.
    """
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install av") from None
    if path.stat().st_size == 0:
        raise ValueError(f"video file {str(path)!r} is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"video file {str(path)!r} has no video stream")
            decoded = list(container.decode(video=0))
            if not decoded:
                raise ValueError(f"video file {str(path)!r} holds no frames")
            kept = uniform_frame_indices(len(decoded), max_frames).tolist()
            return np.stack([decoded[index].to_ndarray(format="rgb24") for index in kept])
    except (av.FFmpegError, OSError) as error:
        raise ValueError(f"video file {str(path)!r} cannot be decoded ({error})") from None


# --- generated ids → sentences ---------------------------------------------------------------
def start_token_ids(generation_config: Any) -> frozenset[int]:
    """The ids a generated sequence may start with: decoder start and forced first token."""
    candidates = (
        getattr(generation_config, "decoder_start_token_id", None),
        getattr(generation_config, "forced_bos_token_id", None),
    )
    return frozenset(token for token in candidates if isinstance(token, int))


def strip_start_tokens(sequence: Sequence[int], start_ids: Iterable[int]) -> list[int]:
    """``sequence`` without its leading start tokens (at most two: decoder start, forced first)."""
    start_ids = frozenset(start_ids)
    sequence = list(sequence)
    skipped = 0
    while skipped < min(2, len(sequence)) and sequence[skipped] in start_ids:
        skipped += 1
    return sequence[skipped:]


def decode_generated(tokenizer: Any, sequences: Any, generation_config: Any) -> list[str]:
    """Sentences of (N, L) generated ids (a tensor, an array or lists; negative ids are padding).

    The start tokens of ``generation_config`` are dropped from the front of each sequence, special
    tokens are skipped and whitespace is stripped.
    """
    rows = sequences.tolist() if hasattr(sequences, "tolist") else [list(row) for row in sequences]
    start_ids = start_token_ids(generation_config)
    pad = tokenizer.pad_token_id
    cleaned = [[pad if token < 0 else token for token in strip_start_tokens(row, start_ids)] for row in rows]
    return [text.strip() for text in tokenizer.batch_decode(cleaned, skip_special_tokens=True)]
