"""The ``sign-language-translation`` pipeline: a sign language video in, sentences out.

This file travels to the Hub with the model (``trust_remote_code``): it imports only stdlib,
numpy, torch, transformers and its sibling files. PyAV (video files) and PIL (frame folders)
are imported only when such an input arrives.

Inputs: a video file path (any format FFmpeg reads, decoded with PyAV and timed by its frames'
time stamps, variable frame rates and display rotation included); a folder of frame images
(``.png``, ``.jpg``, …, in numeric order of the file names: ``images2.png`` before
``images10.png``) or a ``(T, H, W, 3)`` uint8 RGB array (numpy or torch), both at ``fps`` frames
per second. Every input is resampled to the rate the model was trained at,
``model.config.frame_rate`` (nearest frames, :mod:`video_stream`), and read as a stream, window
by window (:mod:`video_windows`): frames larger than the model's ``resize`` are shrunk as they are
decoded, so memory is bounded by one window.

Preprocessing is the evaluation transform the model was trained with:
``VideoTransform(train=False, **model.config.video_preprocessing)`` (the same code as training).
``preprocess`` only picks the frames (uint8); the model resizes, crops and normalises them on its
device, through the same function as training and evaluation (``SclSltVideoEncoder``).

What the model sees of a frame: the shorter side is resized to ``video_preprocessing["resize"]``
(256) and the centred ``size`` × ``size`` (224) square is cropped. Of a 16:9 landscape frame that
is the middle 49 % of the width and 88 % of the height (of 4:3, 66 % and 88 %; of a PHOENIX-2014T
frame, 210 × 260, 88 % and 71 %): a signer off the centre is cut; crop the video around the
signer first.

Generated ids become sentences one way everywhere (evaluation, the Trainer's metrics, this
pipeline): :func:`decode_generated`. ``generate()`` returns every sequence with the tokens that
started decoding: the decoder start token (mBART-cc25 style: the target-language code, e.g.
``de_DE``) and, where the generation config forces a first token, that one too (mBART-50 style:
``</s>`` then the language code). The mBART tokenizers under transformers 5 do not count the
language codes as special tokens, so ``decode(..., skip_special_tokens=True)`` would keep them;
:func:`decode_generated` drops those leading tokens first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, GenerationConfig
from transformers.pipelines.base import ChunkPipeline
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator

from .video_processing import VideoTransform, clip_to_tensor, pad_clips, transform_from_settings
from .video_stream import VideoInput, describe_input, exact_rate
from .video_windows import Window, Windowing, stream_windows

# The collator's longest training target: the pipeline's default generation length.
DEFAULT_MAX_NEW_TOKENS = 128
# transformers' own default (None in 5.17 and 5.24; generate then applies 20): no length chosen.
GENERIC_MAX_LENGTH = GenerationConfig().max_length
# The frame rate of models saved before config.frame_rate existed: PHOENIX-2014T's.
DEFAULT_FRAME_RATE = 25.0
# Files of which at least one is in every saved tokenizer folder.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "spiece.model")


def custom_pipeline_entry() -> dict[str, Any]:
    """The ``config.custom_pipelines`` entry of this task, as ``Pipeline.save_pretrained`` writes it.

    ``pt`` names a ``transformers`` auto class: a loading process looks it up in ``transformers``.
    """
    impl = f"{SignLanguageTranslationPipeline.__module__.rsplit('.', 1)[-1]}.SignLanguageTranslationPipeline"
    return {"impl": impl, "pt": ["AutoModelForSeq2SeqLM"], "type": "multimodal"}


class SignLanguageTranslationPipeline(ChunkPipeline):
    """Translate sign language videos (files, frame folders, arrays: see the module) with an SCL-SLT model.

    Call arguments (besides ``batch_size``, ``num_workers`` and generation arguments such as
    ``num_beams`` and ``max_new_tokens``, which pass through to ``model.generate``):

    - ``fps``: frame rate of frame folders and arrays (default: the model's); files use their own
      time stamps.
    - ``chunk_length_s``: translate in windows of at most this many seconds, as transformers' ASR
      pipeline does with audio. Without it, the whole video is one window, and a video longer than
      the model reads at once (``video_preprocessing["max_frames"]`` frames, and what the visual
      encoder's positions allow) is refused with a message saying so — never squeezed in time.
    - ``stride_length_s``: seconds of context read on each side of a window (a number, or a
      ``(left, right)`` pair; default ``chunk_length_s / 6``). Each window's translation is reported
      for its own span, which excludes the context; the own spans tile the video.
    - ``cut_at_pauses`` (default ``True``): end windows where the signing pauses, not on a grid.
    - ``return_timestamps``: add ``"timestamp": (start, end)`` in seconds to each window's result.

    Returns, per input, a list of dicts ``{"translation_text": str}`` (with ``"timestamp"`` when
    asked), in time order: one per returned sequence of each window (``num_return_sequences``, one
    by default, cannot be combined with ``chunk_length_s``). ``batch_size > 1`` batches windows (of
    one video or several), padded in time: the same translations as one window at a time.

    Example::

        from transformers import pipeline

        # With the project installed: import it and load any saved folder.
        import modeling_scl_slt  # registers the task

        translate = pipeline("sign-language-translation", model="path/to/model")
        translate("clip.mp4", num_beams=4)  # [{"translation_text": "..."}]
        translate("talk.mp4", chunk_length_s=8, return_timestamps=True)  # [{..., "timestamp": (0.0, 6.8)}, …]

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

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        # Set first: the base class's __init__ parses the call arguments given to pipeline(...).
        config = model.config
        self.video_transform = evaluation_transform(getattr(config, "video_preprocessing", None))
        self.min_frames = int(config.temporal_downsampling)  # the fewest frames of a window
        rate = getattr(config, "frame_rate", None)
        self.frame_rate = float(exact_rate(DEFAULT_FRAME_RATE if rate is None else rate, "config.frame_rate"))
        self.max_frames = min(self.video_transform.max_frames, config.max_clip_frames)  # of a window
        super().__init__(model, *args, **kwargs)
        if self.tokenizer is None:
            raise missing_tokenizer_error(str(getattr(self.model, "name_or_path", "") or "the model"))

    def get_inference_context(self) -> Any:
        """``torch.inference_mode`` around ``_forward`` (the base class uses ``torch.no_grad``).

        Nothing of a translation call takes part in autograd later, so the version counters and
        view tracking that ``no_grad`` still maintains are skipped.
        """
        return torch.inference_mode

    def __call__(self, videos: VideoInput | list[VideoInput], **kwargs: Any) -> Any:
        """Translate one video (→ a list of dicts) or a list of them (→ a list of those).

        ``kwargs``: ``fps``, ``chunk_length_s``, ``stride_length_s``, ``cut_at_pauses``,
        ``return_timestamps``, ``batch_size``, ``num_workers`` and generation arguments of
        ``model.generate``.
        """
        if isinstance(videos, list) and not videos:
            return []
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(
        self,
        fps: float | None = None,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        cut_at_pauses: bool = True,
        return_timestamps: bool = False,
        generate_kwargs: dict[str, Any] | None = None,
        **generation_params: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # Every other keyword is a generation argument: generate() rejects unknown ones itself.
        generation = {**(generate_kwargs or {}), **generation_params}
        windowing = None
        if chunk_length_s is not None:
            windowing = Windowing.from_seconds(
                chunk_length_s,
                stride_length_s,
                self.frame_rate,
                max_frames=self.max_frames,
                min_frames=self.min_frames,
                cut_at_pauses=cut_at_pauses,
            )
        elif stride_length_s is not None:
            raise ValueError("stride_length_s needs chunk_length_s (the window length in seconds)")
        if windowing is not None and generation.get("num_return_sequences", 1) != 1:
            raise ValueError(
                "num_return_sequences cannot be combined with chunk_length_s: each window gets one "
                "translation"
            )
        if fps is not None:
            exact_rate(fps, "fps")  # refused now, not at the first frame
        preprocess = {"fps": fps, "windowing": windowing}
        return preprocess, generation, {"return_timestamps": bool(return_timestamps)}

    def preprocess(
        self, video: VideoInput, fps: float | None = None, windowing: Windowing | None = None
    ) -> Iterator[dict[str, Any]]:
        """One input → its windows, each ``pixel_values`` (1, T, 3, H, W) uint8 (the model transforms
        them), ``attention_mask`` (1, T) long, ``timestamp`` (1, 2) float64 seconds and ``is_last``."""
        windows = stream_windows(
            video,
            rate=exact_rate(self.frame_rate, "config.frame_rate"),
            fps=self.frame_rate if fps is None else fps,
            shorter_side=self.video_transform.resize,
            max_frames=self.max_frames,
            windowing=windowing,
            min_frames=self.min_frames,
        )
        try:
            for window in windows:
                yield window_inputs(video, window, self.video_transform, self.min_frames, self.frame_rate)
        except ValueError as error:
            # transformers asks for the next input's windows while it handles the previous input's
            # StopIteration: without this, that StopIteration is chained to every message.
            raise error from None

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs: Any) -> dict[str, Any]:
        """Generate: ``sequences`` (B, num_return_sequences, L) token ids, with the windows' ``timestamp``
        (B, 2) and ``is_last`` passed on."""
        pixel_values = model_inputs["pixel_values"]  # (B, T, 3, H, W) uint8, or float (B, T, 3, S, S)
        if pixel_values.is_floating_point():
            pixel_values = pixel_values.to(self.model.dtype)
        generate_kwargs = {**self.default_length(generate_kwargs), **generate_kwargs}
        generate_kwargs["return_dict_in_generate"] = False
        sequences = self.model.generate(
            pixel_values=pixel_values, attention_mask=model_inputs["attention_mask"], **generate_kwargs
        )  # (B * num_return_sequences, L)
        return {
            "sequences": sequences.reshape(pixel_values.shape[0], -1, sequences.shape[-1]),
            "timestamp": model_inputs["timestamp"],
            "is_last": model_inputs["is_last"],
        }

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

    def postprocess(
        self, model_outputs: list[dict[str, Any]], return_timestamps: bool = False
    ) -> list[dict[str, Any]]:
        """The windows of one input, each (1, num_return_sequences, L) ids → one dict per sequence."""
        results = []
        for output in model_outputs:
            texts = decode_generated(self.tokenizer, output["sequences"][0], self.model.generation_config)
            start, end = (round(float(value), 3) for value in output["timestamp"][0])
            for text in texts:
                results.append(
                    {"translation_text": text, "timestamp": (start, end)}
                    if return_timestamps
                    else {"translation_text": text}
                )
        return results

    def get_iterator(
        self,
        inputs: Any,
        num_workers: int,
        batch_size: int,
        preprocess_params: dict[str, Any],
        forward_params: dict[str, Any],
        postprocess_params: dict[str, Any],
    ) -> PipelineIterator:
        """Windows of all inputs in order, batched by :func:`pad_clips_in_time` (the default collate
        cannot pad videos), regrouped per input by their ``is_last`` before ``postprocess``.

        Windows come from generators: at most one worker reads them (``num_workers`` > 1 is lowered).
        """
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        collate = partial(pad_clips_in_time, transform=self.video_transform)
        loader = DataLoader(
            dataset, num_workers=min(num_workers, 1), batch_size=batch_size, collate_fn=collate
        )
        model_iterator = PipelinePackIterator(
            loader, self.forward, forward_params, loader_batch_size=batch_size
        )
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


def window_inputs(
    video: VideoInput, window: Window, transform: VideoTransform, min_frames: int, frame_rate: float
) -> dict[str, Any]:
    """One window of ``video`` as model inputs (see :meth:`SignLanguageTranslationPipeline.preprocess`);
    a ValueError when it has fewer than ``min_frames`` frames or frames the transform cannot crop."""
    if len(window.frames) < min_frames:
        raise ValueError(
            f"{describe_input(video)} has {len(window.frames)} frames at {frame_rate:g} fps; "
            f"the model needs at least {min_frames} "
            f"(its temporal module downsamples time ×{min_frames})"
        )
    clip = clip_to_tensor(window.frames)  # (T, 3, H, W) uint8
    try:
        transform.check_frame_size(*clip.shape[-2:])
    except ValueError as error:
        raise ValueError(f"{describe_input(video)} cannot be preprocessed: {error}") from None
    return {
        "pixel_values": clip.unsqueeze(0),
        "attention_mask": torch.ones(1, clip.shape[0], dtype=torch.long),
        "timestamp": torch.tensor([[window.start, window.end]], dtype=torch.float64),
        "is_last": window.is_last,
    }


def evaluation_transform(settings: dict[str, Any] | None) -> VideoTransform:
    """``VideoTransform(train=False, **settings)``; ``settings`` is ``config.video_preprocessing``."""
    return transform_from_settings(settings, train=False)


def pad_clips_in_time(
    items: Sequence[dict[str, Any]], transform: VideoTransform | None = None
) -> dict[str, Any]:
    """Collate preprocessed windows (each ``pixel_values`` (1, T_i, 3, H, W) uint8) into one batch.

    Returns ``pixel_values`` (B, T_max, 3, H, W) uint8 and ``attention_mask`` (B, T_max), real
    frames first, with the windows' ``timestamp`` (B, 2) and ``is_last`` (B,) bool when
    they have them. Clips of different frame sizes cannot share one uint8 tensor: such a batch is
    transformed here by ``transform`` (the function the model's device runs), giving float
    ``pixel_values`` (B, T_max, 3, S, S).
    """
    clips = [item["pixel_values"][0] for item in items]
    if transform is not None and len({tuple(clip.shape[1:]) for clip in clips}) > 1:
        clips = [transform.apply(clip[None])[0] for clip in clips]
    batch: dict[str, Any] = pad_clips(clips)
    if all("timestamp" in item for item in items):
        batch["timestamp"] = torch.cat([item["timestamp"] for item in items])
        # A tensor, not a list: transformers unbatches tensors row by row, and with a batch size of
        # 1 it reads the whole value as the flag (a one-element list would always be true).
        batch["is_last"] = torch.tensor([bool(item["is_last"]) for item in items])
    return batch


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
