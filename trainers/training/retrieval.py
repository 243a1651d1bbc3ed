"""Video↔text retrieval over an evaluation set: the metric of stages reference and scl."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from modeling_scl_slt import SclSltForSignTranslation

from ..method.similarity_series import SnapshotSimilaritySeries
from ..method.snapshots import Snapshot, pad_and_concatenate
from ..method.text_groups import text_group_ids


@torch.no_grad()
def collect_features(
    model: SclSltForSignTranslation,
    dataloader: DataLoader,
    device: torch.device | str,
    normalize_to: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Projected video and text tokens of every sample, in dataloader order, padded to one length.

    Returns ``video_tokens`` (N, Lv, P), ``video_mask`` (N, Lv), ``text_tokens`` (N, Lt, P),
    ``text_mask`` (N, Lt) on the CPU, and ``labels`` (N, L) when the batches carry labels.
    With ``normalize_to`` (what a snapshot stores, e.g. float16), every token is L2-normalised on
    the CPU and cast batch by batch: the same values as normalising the whole float32 result, in
    a fraction of its memory. Padding added across batches stays zero.
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for batch in dataloader:
        batch = {
            key: value.to(device) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()
        }
        # pixel_values, or the frame_features of a features corpus
        video_input = {key: batch[key] for key in ("pixel_values", "frame_features") if key in batch}
        video, video_mask = model.get_video_features(
            attention_mask=batch.get("attention_mask"), **video_input
        )
        text, text_mask = model.get_text_features(batch["text_input_ids"], batch.get("text_attention_mask"))
        for name, tensor in (
            ("video", video),
            ("video_mask", video_mask),
            ("text", text),
            ("text_mask", text_mask),
        ):
            tensor = tensor.float().cpu()
            if normalize_to is not None and name in ("video", "text"):
                tensor = F.normalize(tensor, dim=-1).to(normalize_to)
            parts[name].append(tensor)
        if "labels" in batch:
            parts["labels"].append(batch["labels"].cpu())
    model.train(was_training)
    video_tokens, video_mask = pad_and_concatenate(parts["video"], parts["video_mask"])
    text_tokens, text_mask = pad_and_concatenate(parts["text"], parts["text_mask"])
    features = {
        "video_tokens": video_tokens,
        "video_mask": video_mask,
        "text_tokens": text_tokens,
        "text_mask": text_mask,
    }
    if parts["labels"]:
        features["labels"] = pad_label_rows(parts["labels"])
    return features


def pad_label_rows(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B_i, L_i) label blocks, padding with -100 to the longest L."""
    length = max(block.shape[1] for block in blocks)
    return torch.cat(
        [torch.nn.functional.pad(block, (0, length - block.shape[1]), value=-100) for block in blocks]
    )


def blocked_similarity(
    features: dict[str, torch.Tensor], aggregation: str, temperature: float, block_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video→text (N, N) and text→video (N, N) similarity of collected features.

    Computed block by block by the similarity series of Pair Selection (with its reference CiCo
    kernel, the model's own maths), over a one-snapshot series of ``features``. For CiCo the two
    directions differ (each has its own token matching), so both are computed.
    """
    snapshot = Snapshot.from_embeddings(
        sample_ids=range(features["video_tokens"].shape[0]),
        step=0,
        epoch=0,
        video_tokens=features["video_tokens"],
        video_mask=features["video_mask"],
        text_tokens=features["text_tokens"],
        text_mask=features["text_mask"],
        aggregation=aggregation,
        temperature=temperature,
    )
    everything = torch.arange(snapshot.num_samples)

    def similarity(direction: str) -> torch.Tensor:  # (N videos, N texts)
        series = SnapshotSimilaritySeries(
            [snapshot], direction=direction, tile_size=block_size, cico_kernel="reference"
        )
        return series.block(0, everything, everything)

    video_to_text = similarity("video_to_text")
    if aggregation != "cico":
        return video_to_text, video_to_text.T
    return video_to_text, similarity("text_to_video").T


def retrieval_metrics(
    model: SclSltForSignTranslation, dataloader: DataLoader, device: torch.device | str
) -> dict[str, float]:
    """Video→text and text→video recall at 1/5/10 (×100) over an evaluation set.

    A retrieved text counts as correct when it is identical to the target (same label row), so
    a duplicated sentence is not a miss: identical texts cannot be told apart.
    """
    features = collect_features(model, dataloader, device)
    video_to_text, text_to_video = blocked_similarity(
        features, model.config.similarity_aggregation, model.config.similarity_temperature
    )
    groups = (
        text_group_ids(features["labels"]) if "labels" in features else torch.arange(video_to_text.shape[0])
    )
    same_text = groups[:, None] == groups[None, :]  # (N, N)
    metrics = {}
    for direction, scores in (("video_to_text", video_to_text), ("text_to_video", text_to_video)):
        ranking = scores.argsort(dim=1, descending=True)  # (N, N)
        hits = same_text.gather(1, ranking)  # (N, N) bool, in rank order
        first_hit = hits.float().argmax(dim=1)  # rank of the first correct item
        for k in (1, 5, 10):
            metrics[f"{direction}_r{k}"] = 100.0 * float((first_hit < k).float().mean())
    return metrics
