"""Frame features: run a frozen backbone once over every frame of a corpus, and bind features to it.

:func:`extract_frame_features` writes a frame-features corpus (``datasets_scripts.frame_features``)
from a corpus of videos; :func:`run_feature_extraction` is ``scl-slt extract-features``: the corpus,
transform and backbone of a recipe config (or a model folder's backbone). :func:`backbone_identity`
is the fingerprint stored with the features, and :func:`check_features_backbone` is how training
refuses features that another backbone made.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from datasets import DatasetDict
from torch import nn
from torch.utils.data import DataLoader
from transformers import ResNetModel

from datasets_scripts.frame_features import FeatureRow, FrameFeaturesInfo, FrameFeaturesWriter
from modeling_scl_slt import SclSltForSignTranslation
from modeling_scl_slt.video_processing import VideoTransform, pad_clips

from ..method.damaged_files import check_model_folder_files
from ..training.progress import task_bar
from .recipe_config import ConfigError, RecipeConfig
from .run_paths import RunPaths
from .run_setup import Report, check_before_work, load_corpus

logger = logging.getLogger(__name__)

# The ResNetConfig fields that change what a backbone computes from the same weights.
ARCHITECTURE_FIELDS = (
    "num_channels",
    "embedding_size",
    "hidden_sizes",
    "depths",
    "layer_type",
    "hidden_act",
    "downsample_in_first_stage",
    "downsample_in_bottleneck",
)
ALL_FRAMES = 2**31 - 1  # extraction keeps every frame; max_frames applies when training reads them


def backbone_identity(backbone: nn.Module) -> str:
    """sha256 (hex) over the backbone's architecture fields and every state-dict tensor (name, dtype,
    shape, bytes), BatchNorm counters excepted. Independent of device and memory format."""
    digest = hashlib.sha256()
    config = getattr(backbone, "config", None)
    architecture = {name: getattr(config, name, None) for name in ARCHITECTURE_FIELDS}
    digest.update(json.dumps(architecture, sort_keys=True).encode())
    for name, tensor in sorted(backbone.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            continue  # counts training steps; no effect on an eval-mode forward
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_features_backbone(
    info: FrameFeaturesInfo, model: SclSltForSignTranslation, where: str
) -> str | None:
    """Refuse features the model's backbone did not make (a ConfigError naming ``where``).

    Returns the line to report for features of ``kind: synthetic`` (made without any backbone),
    which are accepted; None for features of this backbone.
    """
    size = model.config.frame_feature_size
    if info.feature_dim != size:
        raise ConfigError(
            f"{where}: features of size {info.feature_dim}; the model's backbone gives {size} "
            "(config.frame_feature_size)"
        )
    if info.backbone["kind"] == "synthetic":
        return (
            f"{where}: synthetic frame features ({info.backbone.get('source', info.backbone['identity'])}): "
            "the saved model's backbone does not produce them, so it will not translate raw video as trained"
        )
    identity = backbone_identity(model.video_encoder.backbone)
    if info.backbone["identity"] != identity:
        raise ConfigError(
            f"{where}: the features were made by backbone {info.backbone['identity'][:12]}… "
            f"({info.backbone.get('source')}), not by the model's backbone {identity[:12]}…: extract them "
            "again with this model's backbone (scl-slt extract-features)"
        )
    return None


def pooled_frame_features(backbone: nn.Module, frames: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(n, 3, H, W) normalised frames → (n, D) pooled backbone features, ``chunk_size`` frames at a time."""
    return torch.cat([backbone(chunk).pooler_output.flatten(1) for chunk in frames.split(chunk_size)])


@torch.inference_mode()
def extract_frame_features(
    corpus: DatasetDict,
    backbone: nn.Module,
    out_dir: str | Path,
    transform: VideoTransform,
    language: str,
    source: str,
    batch_size: int = 4,
    chunk_size: int = 256,
    shard_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> FrameFeaturesInfo:
    """Write the frame-features corpus of ``corpus`` (splits with ``name``, ``text``, ``frames``).

    Every frame of every video goes through ``transform`` (evaluation mode; its ``max_frames`` is
    ignored: all frames are kept) and ``backbone`` in eval mode, ``batch_size`` videos and at most
    ``chunk_size`` frames per forward. Features are stored in float16, ``shard_size`` videos per
    shard; complete shards of an earlier, interrupted call with the same settings are skipped.
    ``source`` names the backbone in ``features.json``. Returns the written ``features.json``.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backbone = backbone.to(device).eval()
    every_frame = VideoTransform(size=transform.size, resize=transform.resize, max_frames=ALL_FRAMES)
    record = {"kind": "model", "identity": backbone_identity(backbone), "source": source}
    settings = {"size": every_frame.size, "resize": every_frame.resize, "normalize": every_frame.normalize}
    feature_dim = backbone.config.hidden_sizes[-1]
    writer = FrameFeaturesWriter(out_dir, feature_dim, record, settings, language, shard_size)
    counts = {split: len(corpus[split]) for split in corpus}
    todo = [
        (split, r)
        for split in corpus
        for r in writer.shard_ranges(counts[split])
        if not writer.has_shard(split, *r)
    ]
    done = sum(len(writer.shard_ranges(n)) for n in counts.values()) - len(todo)
    if done:
        logger.info("%s: %d complete shard(s) kept, %d to extract", out_dir, done, len(todo))
    shards = task_bar(todo, "extracting frame features", total=len(todo), unit="shards") if progress else todo
    for split, (start, stop) in shards:
        rows = corpus[split].select(range(start, stop))
        loader = DataLoader(
            rows, batch_size=batch_size, num_workers=num_workers, collate_fn=VideoBatch(every_frame)
        )
        written: list[FeatureRow] = []
        for names, texts, batch in loader:
            mask = batch["attention_mask"].bool()
            frames = batch["pixel_values"].to(device)[mask.to(device)]  # (n_real, 3, H, W)
            pooled = pooled_frame_features(backbone, frames, chunk_size).float().cpu()  # (n_real, D)
            lengths = mask.sum(dim=1).tolist()
            for name, text, features in zip(names, texts, pooled.split(lengths), strict=True):
                written.append(FeatureRow(name, text, features.numpy()))
        writer.write_shard(split, start, written)
    return writer.finish(counts)


class VideoBatch:
    """Collate corpus rows into (names, texts, padded evaluation-transformed clips)."""

    def __init__(self, transform: VideoTransform) -> None:
        self.transform = transform

    def __call__(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, torch.Tensor]]:
        clips = [self.transform(row["frames"]) for row in rows]  # (T_i, 3, size, size) float32
        return [row["name"] for row in rows], [row["text"] for row in rows], pad_clips(clips)


def load_backbone(config: RecipeConfig, model_dir: str | Path | None, where: str) -> tuple[nn.Module, str]:
    """The backbone to extract with and its source: ``model_dir``'s, else ``model.backbone`` of the config."""
    if model_dir is not None:
        if not (Path(model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"--model: {model_dir} is not a saved model folder (no config.json)")
        check_model_folder_files(model_dir)
        model = SclSltForSignTranslation.from_pretrained(model_dir)
        return model.video_encoder.backbone, str(model_dir)
    if config.model.backbone is None:
        raise ConfigError(
            f"{where}: model.backbone is not set: extract-features needs a pretrained backbone there "
            "(e.g. microsoft/resnet-18) or a model folder (--model)"
        )
    return ResNetModel.from_pretrained(config.model.backbone), config.model.backbone


def run_feature_extraction(
    config: RecipeConfig,
    out_dir: str | Path,
    model_dir: str | Path | None = None,
    where: str = "recipe config",
    report: Report = print,
    **options: Any,
) -> FrameFeaturesInfo:
    """``scl-slt extract-features``: the config's corpus (a synthetic one is generated in
    ``out_dir/corpus``) through its evaluation transform (``video.image_size``, ``video.resize``) and
    the backbone of ``model_dir`` or of ``model.backbone``. ``options`` go to
    :func:`extract_frame_features` (batch_size, shard_size, chunk_size, num_workers, progress)."""
    check_before_work(config, where)
    backbone, source = load_backbone(config, model_dir, where)
    corpus = load_corpus(config, RunPaths(Path(out_dir)), PartialState(), report)
    transform = VideoTransform(size=config.video.image_size, resize=config.video.resize)
    info = extract_frame_features(
        corpus, backbone, out_dir, transform, config.corpus.language, source, **options
    )
    frames = sum(info.splits.values())
    report(f"wrote the frame features of {frames} videos to {out_dir} (backbone {source})")
    return info
