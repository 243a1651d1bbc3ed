"""The feature-level twin of a gloss-annotated corpus: real annotations rendered as frame features.

The pixel twin (:mod:`datasets_scripts.synthetic.gloss_rendered`) draws every frame and makes the model's
ResNet learn to see it. This twin skips the pixels: it writes, for every frame of every annotated
video, the feature vector a frozen pretrained backbone would give, so the training that follows
(``video.features: DIR`` in the recipe) spends its time on alignment and translation only. The
annotations are real (names, gloss sequences, sentences, frame counts, official splits); the
features are drawn from the model below, so results on it are **not** results on the real corpus.

The feature model (every random draw comes from ``seed``; a gloss's draws also from its string):

Gloss prototypes
    Every distinct gloss has ``key_poses`` prototype frames, vectors in an ``r``-dimensional sign
    space (``sign_rank``), mapped to the ``feature_dim`` features by one fixed random linear map
    (features of real backbones also vary in far fewer directions than they have channels). A
    gloss belongs to one of ``num_families`` families of similar-looking signs (by a stable hash
    of its string): its key poses are ``sqrt(1 - overlap) * own + sqrt(overlap) * family``, with
    ``own`` and ``family`` standard normal. ``overlap = 0`` makes every gloss distinct, ``1``
    makes a family's glosses identical.
Timing
    A video keeps its real ``num_frames`` (at ``frame_step`` 1). It starts and ends at rest (each
    a random 3–12 % of its frames, at a rest pose); the glosses fill the frames between with
    random relative durations (Gamma(4) weights), so a gloss may get no frame in a very short
    video, as fast signing blurs signs together. Within a gloss the sign moves linearly through
    its key poses.
Co-articulation
    The sign-space trajectory is smoothed by a centred moving average of ``coarticulation_frames``
    frames (edges repeated), which blends neighbouring glosses over their boundary.
Signers
    ``num_signers`` signers, each with a per-channel gain (log-normal, sigma 0.15) and offset
    (normal, sigma 0.3), and its own rest pose. A row's ``signer`` id picks one (ids in sorted
    order); a row without one gets the signer of its broadcast, the name without its trailing
    ``-N`` (PHOENIX names a broadcast's sentences ``<date>_<show>-1``, ``-2``, …; one broadcast has
    one interpreter), by a stable hash.
Features
    ``relu(gain * (bias + project(trajectory)) + offset + noise * eps)``, ``eps`` standard normal
    per frame and channel: non-negative, like pooled post-ReLU ResNet features; ``bias`` is one
    fixed vector (normal, mean 0.5, sigma 0.5). The projected trajectory has unit variance per
    channel at ``overlap = 0``.
Difficulty
    One knob in ``[0, 1]`` sets how well the video side can align: ``noise = 4 * difficulty``
    (in units of the signal's per-channel standard deviation) and ``overlap = difficulty``. Use
    :meth:`FeatureTwinParameters.nearest_prototype_accuracy` for a cheap separability measure.

Output
    A frame-features corpus (:mod:`datasets_scripts.frame_features`, read by the recipe's
    ``video.features``) written through its ``FrameFeaturesWriter``: ``features.json`` with
    ``backbone`` ``{"kind": "synthetic", "identity": "feature-twin:<sha256 of the parameters and
    the annotations>"}`` and ``transform`` null, and parquet shards per split in the annotations'
    row order; beside them ``feature_twin.json`` (the parameters). Only one shard's features are in
    memory at a time; shards are written atomically, so a killed run resumes by skipping complete
    ones. Same annotations and parameters → the same features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import OnError
from ..frame_features import (
    INFO_FILE,
    FeatureRow,
    FrameFeaturesWriter,
    atomic_write_text,
    read_frame_features_info,
)
from .gloss_annotations import AnnotationFormat, GlossAnnotations, GlossRow, read_gloss_annotations

GENERATOR_FILE = "feature_twin.json"  # beside features.json: the generator's parameters
SOURCE = "datasets_scripts.synthetic.feature_twin (real annotations rendered as synthetic frame features)"
_BROADCAST_SUFFIX = re.compile(r"-\d+$")
_REST_SHARE = (0.03, 0.12)  # each of the opening and closing rests, as a share of the frames
_DURATION_SHAPE = 4.0  # Gamma shape of a gloss's relative duration
_SIGNER_GAIN_SIGMA, _SIGNER_OFFSET_SIGMA = 0.15, 0.3
_BIAS_MEAN, _BIAS_SIGMA = 0.5, 0.5
_MAX_NOISE = 4.0


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_stable_int("feature-twin", *parts))


@dataclass(frozen=True)
class FeatureTwinParameters:
    """What the feature twin draws (see the module docstring for the model).

    Args:
        difficulty: In ``[0, 1]``: frame noise ``4 * difficulty`` and prototype overlap
            ``difficulty``. 0: clean, distinct signs; 1: a family's glosses look the same, in
            heavy noise.
        feature_dim: Channels of a frame feature (ResNet-18 pooled features: 512).
        sign_rank: Dimension of the sign space the glosses move in (at most ``feature_dim``).
        key_poses: Prototype frames per gloss (at least 1).
        num_families: Families of similar glosses that ``overlap`` pulls together.
        coarticulation_frames: Width of the moving average blending neighbouring glosses (frames;
            1 = none).
        num_signers: Signers (per-channel gain and offset, rest pose).
        frame_step: Keep every ``frame_step``-th real frame: a video has
            ``ceil(num_frames / frame_step)`` feature frames.
        seed: Draws everything: prototypes, signers, timing, noise.
    """

    difficulty: float = 0.5
    feature_dim: int = 512
    sign_rank: int = 64
    key_poses: int = 3
    num_families: int = 32
    coarticulation_frames: int = 5
    num_signers: int = 9
    frame_step: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        difficulty = self.difficulty
        if (
            isinstance(difficulty, bool)
            or not isinstance(difficulty, int | float)
            or not 0 <= difficulty <= 1
        ):
            raise ValueError(f"difficulty must be a number in [0, 1], got {difficulty!r}")
        for name in ("feature_dim", "sign_rank", "key_poses", "num_families", "coarticulation_frames"):
            self._check_int(name, 1)
        self._check_int("num_signers", 1)
        self._check_int("frame_step", 1)
        self._check_int("seed", 0)
        if self.sign_rank > self.feature_dim:
            raise ValueError(
                f"sign_rank must be at most feature_dim ({self.feature_dim}), got {self.sign_rank}"
            )

    def _check_int(self, name: str, least: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int of at least {least}, got {value!r}")

    @property
    def noise(self) -> float:
        """Standard deviation of the per-frame noise, in units of the signal's per-channel std."""
        return _MAX_NOISE * self.difficulty

    @property
    def overlap(self) -> float:
        """Share of a gloss prototype's variance that its family has in common."""
        return float(self.difficulty)

    def identity(self, annotations_digest: str) -> str:
        """``feature-twin:<sha256 of these parameters and the annotations' digest>``."""
        payload = json.dumps({**dataclasses.asdict(self), "annotations": annotations_digest}, sort_keys=True)
        return "feature-twin:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def renderer(self) -> FeatureRenderer:
        return FeatureRenderer(self)

    def nearest_prototype_accuracy(self, glosses: Sequence[str], frames_per_gloss: int = 8) -> float:
        """Share of noisy frames whose nearest gloss prototype (in feature space) is their own.

        A cheap separability measure of the knob: every gloss of ``glosses`` (distinct strings)
        signed by signer 0 at the middle key pose, ``frames_per_gloss`` noisy frames each,
        classified by Euclidean distance among the noise-free features of all of them.
        """
        renderer = self.renderer()
        names = sorted(set(glosses))
        middle = self.key_poses // 2
        poses = np.stack([renderer.key_poses(gloss)[middle] for gloss in names])  # (G, r)
        clean = renderer.features_of(poses, np.zeros(len(names), dtype=np.int64))  # (G, D)
        repeated = np.repeat(poses, frames_per_gloss, axis=0)  # (G * F, r)
        noise = _rng(self.seed, "nearest-prototype").standard_normal(
            (len(repeated), self.feature_dim), dtype=np.float32
        )
        noisy = renderer.features_of(repeated, np.zeros(len(repeated), dtype=np.int64), noise)  # (G * F, D)
        distances = (
            (noisy**2).sum(1)[:, None] - 2.0 * noisy @ clean.T + (clean**2).sum(1)[None, :]
        )  # (G * F, G)
        truth = np.repeat(np.arange(len(names)), frames_per_gloss)
        return float((distances.argmin(1) == truth).mean())


class FeatureRenderer:
    """Draws the frame features of videos for one `FeatureTwinParameters` (deterministic)."""

    def __init__(self, parameters: FeatureTwinParameters) -> None:
        self.parameters = p = parameters
        rng = _rng(p.seed, "shared")
        # Unit variance per channel for a standard-normal sign-space point.
        self.projection = (rng.standard_normal((p.sign_rank, p.feature_dim)) / np.sqrt(p.sign_rank)).astype(
            np.float32
        )  # (r, D)
        self.bias = (_BIAS_MEAN + _BIAS_SIGMA * rng.standard_normal(p.feature_dim)).astype(np.float32)  # (D,)
        self.rest = rng.standard_normal(p.sign_rank).astype(np.float32)  # (r,)
        self.gain = np.exp(_SIGNER_GAIN_SIGMA * rng.standard_normal((p.num_signers, p.feature_dim))).astype(
            np.float32
        )  # (S, D)
        self.offset = (_SIGNER_OFFSET_SIGMA * rng.standard_normal((p.num_signers, p.feature_dim))).astype(
            np.float32
        )  # (S, D)
        self.signer_rest = (self.rest + 0.5 * rng.standard_normal((p.num_signers, p.sign_rank))).astype(
            np.float32
        )  # (S, r)
        self._poses: dict[str, np.ndarray] = {}

    def key_poses(self, gloss: str) -> np.ndarray:
        """The gloss's prototype frames in sign space, shape ``(key_poses, sign_rank)``."""
        poses = self._poses.get(gloss)
        if poses is None:
            p = self.parameters
            family = _stable_int("family", gloss) % p.num_families
            own = _rng(p.seed, "gloss", gloss).standard_normal((p.key_poses, p.sign_rank))
            shared = _rng(p.seed, "family", family).standard_normal((p.key_poses, p.sign_rank))
            poses = (np.sqrt(1.0 - p.overlap) * own + np.sqrt(p.overlap) * shared).astype(np.float32)
            self._poses[gloss] = poses
        return poses

    def features_of(
        self, trajectory: np.ndarray, signers: np.ndarray, noise: np.ndarray | None = None
    ) -> np.ndarray:
        """Frame features ``(F, D)`` float32 of sign-space frames ``(F, r)``.

        ``signers`` ``(F,)`` gives each frame's signer; ``noise`` ``(F, D)`` standard normal is
        scaled by the knob's noise level (None: noise-free prototypes).
        """
        pre = self.bias + trajectory @ self.projection  # (F, D)
        pre *= self.gain[signers]
        pre += self.offset[signers]
        if noise is not None:
            pre += self.parameters.noise * noise
        return np.maximum(pre, 0.0, out=pre)

    def trajectory(
        self, glosses: Sequence[str], num_frames: int, signer: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The smoothed sign-space path of one video, shape ``(num_frames, sign_rank)``."""
        p = self.parameters
        rest = self.signer_rest[signer]
        path = np.repeat(rest[None, :], num_frames, axis=0)  # (T, r)
        if glosses:
            opening, closing = rng.uniform(*_REST_SHARE, size=2)
            position = (np.arange(num_frames) + 0.5) / num_frames  # (T,) in (0, 1)
            inner = (position - opening) / (1.0 - opening - closing)  # (T,): [0, 1) while signing
            signing = (inner >= 0) & (inner < 1)
            weights = rng.gamma(_DURATION_SHAPE, size=len(glosses))
            bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])  # (N + 1,)
            which = np.clip(np.searchsorted(bounds, inner[signing], side="right") - 1, 0, len(glosses) - 1)
            phase = (inner[signing] - bounds[which]) / (bounds[which + 1] - bounds[which])  # (F,) in [0, 1)
            poses = np.stack([self.key_poses(gloss) for gloss in glosses])  # (N, K, r)
            scaled = phase * (p.key_poses - 1)
            low = np.floor(scaled).astype(np.int64)
            high = np.minimum(low + 1, p.key_poses - 1)
            mix = (scaled - low)[:, None].astype(np.float32)
            path[signing] = (1.0 - mix) * poses[which, low] + mix * poses[which, high]
        return _moving_average(path, p.coarticulation_frames)

    def videos(self, rows: Sequence[GlossRow], signers: Sequence[int]) -> list[np.ndarray]:
        """The features of annotated videos, each ``(ceil(num_frames / frame_step), D)`` float16.

        A video's draws come from its name alone, so its features do not depend on which other
        videos share the call; the projection runs once over all their frames.
        """
        p = self.parameters
        paths, noises = [], []
        for row, signer in zip(rows, signers, strict=True):
            rng = _rng(p.seed, "video", row.name)
            path = self.trajectory(row.glosses, row.num_frames, signer, rng)[:: p.frame_step]  # (T, r)
            paths.append(path)
            noises.append(rng.standard_normal((path.shape[0], p.feature_dim), dtype=np.float32))
        lengths = [path.shape[0] for path in paths]
        frame_signers = np.repeat(np.asarray(signers, dtype=np.int64), lengths)  # (F,)
        features = self.features_of(np.concatenate(paths), frame_signers, np.concatenate(noises))
        features = features.astype(np.float16)  # (F, D)
        return np.split(features, np.cumsum(lengths)[:-1])


def _moving_average(path: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time of ``(T, r)`` with edge frames repeated; same shape."""
    if width <= 1:
        return path
    before, after = (width - 1) // 2, width // 2
    padded = np.concatenate([np.repeat(path[:1], before, 0), path, np.repeat(path[-1:], after, 0)])
    sums = np.cumsum(np.concatenate([np.zeros_like(path[:1]), padded]), axis=0, dtype=np.float64)
    return ((sums[width:] - sums[:-width]) / width).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Signers and the corpus
# --------------------------------------------------------------------------------------------


def broadcast_of(name: str) -> str:
    """The broadcast a PHOENIX-style sample name belongs to: the name without a trailing ``-N``."""
    return _BROADCAST_SUFFIX.sub("", name)


def assign_signers(annotations: GlossAnnotations, num_signers: int) -> dict[str, int]:
    """Signer index of every row by name (see *Signers* in the module docstring).

    Raises:
        ValueError: the rows name more distinct signer ids than ``num_signers``.
    """
    ids = sorted({row.signer for rows in annotations.values() for row in rows if row.signer})
    if len(ids) > num_signers:
        raise ValueError(
            f"The annotations name {len(ids)} signers but num_signers={num_signers}; "
            f"pass num_signers={len(ids)}."
        )
    index = {signer: i for i, signer in enumerate(ids)}
    return {
        row.name: index[row.signer]
        if row.signer
        else _stable_int("signer", broadcast_of(row.name)) % num_signers
        for rows in annotations.values()
        for row in rows
    }


def annotations_digest(annotations: GlossAnnotations) -> str:
    """sha256 over every row's split, name, glosses, text, frame count and signer, in order."""
    digest = hashlib.sha256()
    for split, rows in annotations.items():
        for row in rows:
            record = [split, row.name, list(row.glosses), row.text, row.num_frames, row.signer]
            digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _as_annotations(annotations: Any) -> GlossAnnotations | None:
    if isinstance(annotations, Mapping) and all(
        isinstance(rows, list) and all(isinstance(row, GlossRow) for row in rows)
        for rows in annotations.values()
    ):
        return dict(annotations)
    return None


def make_feature_twin(
    annotations: GlossAnnotations | str | Path | Mapping[str, Any],
    out_dir: str | Path,
    parameters: FeatureTwinParameters | None = None,
    *,
    format: AnnotationFormat | None = None,
    max_train_videos: int | None = None,
    shard_size: int = 256,
    language: str = "de",
    on_error: OnError = "raise",
    show_progress: bool = False,
) -> Path:
    """Write the frame-features corpus of ``annotations`` into ``out_dir`` and return ``out_dir``.

    Args:
        annotations: ``{split: [GlossRow, …]}`` from :func:`read_gloss_annotations`, or anything it
            reads (e.g. ``../shared/data/phoenix2014t``).
        out_dir: The corpus folder (created if missing). Complete shards of the same annotations
            and parameters are kept (resume); a folder written with other ones is refused.
        parameters: The feature model (default: ``FeatureTwinParameters()``).
        format: Annotation format when ``annotations`` is read here (default: guessed).
        max_train_videos: Keep only the first K train rows (validation and test stay whole).
        shard_size: Videos per parquet shard (and in memory at once).
        language: The corpus language recorded for the metrics (``de``: BLEU tokenize 13a).
        on_error: What reading the annotations does with bad rows: ``"raise"`` or ``"skip"``.
        show_progress: Print one line per shard written on standard error.

    Raises:
        CorpusError: bad annotations, one line per bad row naming its file and line.
        ValueError: an invalid argument, or ``out_dir`` holds a corpus of other annotations or
            parameters.
    """
    parameters = parameters or FeatureTwinParameters()
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    if max_train_videos is not None and (
        isinstance(max_train_videos, bool) or not isinstance(max_train_videos, int) or max_train_videos < 0
    ):
        raise ValueError(f"max_train_videos must be None or an int of at least 0, got {max_train_videos!r}")
    rows_of = _as_annotations(annotations)
    if rows_of is None:
        rows_of = read_gloss_annotations(annotations, format, on_error=on_error)
    if max_train_videos is not None and "train" in rows_of:
        rows_of = {**rows_of, "train": rows_of["train"][:max_train_videos]}
    rows_of = {split: rows for split, rows in rows_of.items() if rows}
    if not rows_of:
        raise ValueError(
            "No videos to write: the annotations hold no rows (or max_train_videos=0 left none)."
        )
    out_dir = Path(out_dir)
    identity = parameters.identity(annotations_digest(rows_of))
    backbone = {"kind": "synthetic", "identity": identity, "source": SOURCE}
    if _finished_before(out_dir, identity):
        return out_dir
    writer = FrameFeaturesWriter(out_dir, parameters.feature_dim, backbone, None, language, shard_size)
    description = {"identity": identity, "parameters": dataclasses.asdict(parameters)}
    atomic_write_text(out_dir / GENERATOR_FILE, json.dumps(description, indent=2))
    signers = assign_signers(rows_of, parameters.num_signers)
    renderer = parameters.renderer()
    for split, rows in rows_of.items():
        ranges = writer.shard_ranges(len(rows))
        for number, (start, stop) in enumerate(ranges, start=1):
            if writer.has_shard(split, start, stop):
                continue
            shard = rows[start:stop]
            videos = renderer.videos(shard, [signers[row.name] for row in shard])
            writer.write_shard(
                split, start, [FeatureRow(r.name, r.text, v) for r, v in zip(shard, videos, strict=True)]
            )
            if show_progress:
                print(f"feature twin: {split} shard {number}/{len(ranges)} written", file=sys.stderr)
    writer.finish({split: len(rows) for split, rows in rows_of.items()})
    return out_dir


def _finished_before(out_dir: Path, identity: str) -> bool:
    """Whether ``out_dir`` holds this very corpus, finished; a finished other one is refused."""
    if not (out_dir / INFO_FILE).is_file():
        return False
    earlier = read_frame_features_info(out_dir).backbone.get("identity")
    if earlier != identity:
        raise ValueError(
            f"{out_dir} holds a finished feature corpus of other annotations or parameters "
            f"({earlier}, expected {identity}): choose another folder or delete it"
        )
    return True
