"""Signs made up from gloss strings, and how a signer signs a gloss sequence into a fixed frame count.

:func:`gloss_sign` turns any gloss (``"REGEN"``, ``"loc-NORD"``, ``"天气"``) into a
:class:`GlossSign` — hand shapes, path, location, direction and handedness — drawn from a
random stream seeded by a stable hash of the gloss (BLAKE2b, not Python's salted ``hash()``),
so a gloss looks the same in every process, run and corpus. :func:`render_gloss_clip` then
moves a signer of :mod:`datasets_scripts.synthetic.rendering` through the signs, stretched in
time (with jittered durations and transitions) to fill exactly the frames asked for, and paints
them with whole-clip numpy operations. :func:`run_jobs` renders and writes a corpus's videos,
in worker threads if asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
from tqdm.auto import tqdm

from ..frames import natural_key
from ..workers import map_in_threads
from .language import Path_, Shape, SignSpec
from .rendering import (
    BASE_SIGN_FRAMES,
    BASE_TRANSITION_FRAMES,
    HAND_RADIUS,
    REST,
    REST_FRAMES,
    SIGN_JITTER,
    Hold,
    SyntheticSigner,
    Track,
    hand_mask,
    make_signers,
    paint_figure,
    path_points,
)
from .synthetic_corpus import write_frame_folder, write_mp4

Handedness = Literal["one", "mirrored", "base"]

SHAPES: tuple[Shape, ...] = get_args(Shape)
PATHS: tuple[Path_, ...] = get_args(Path_)
HANDEDNESS: tuple[Handedness, ...] = ("one", "mirrored", "base")
_HANDEDNESS_WEIGHTS = (0.5, 0.3, 0.2)
# Largest relative change of a segment's duration, for a signer with jitter 0 and 1.
_DURATION_JITTER = (0.15, 0.3)


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process (unlike the built-in ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class GlossSign:
    """How one gloss is signed. Coordinates are signing-space units: x, y in [-1, 1], y down.

    The right (dominant) hand moves along ``path`` from ``start`` to ``end`` with ``shape``.
    ``handedness`` says what the left hand does: ``"one"`` — it rests; ``"mirrored"`` — it
    moves along the mirror image (x → -x) with the same shape; ``"base"`` — it is held still at
    ``left_location`` with ``left_shape`` (a passive hand the right one acts on).
    """

    gloss: str
    shape: Shape
    path: Path_
    start: tuple[float, float]
    end: tuple[float, float]
    handedness: Handedness
    left_shape: Shape
    left_location: tuple[float, float]

    @property
    def spec(self) -> SignSpec:
        """The right hand's movement, as the synthetic corpus's renderer reads it."""
        return SignSpec(
            self.gloss, self.shape, self.path, self.start, self.end, self.handedness == "mirrored"
        )


def _point(x: float, y: float) -> tuple[float, float]:
    return round(float(np.clip(x, -0.9, 0.9)), 3), round(float(np.clip(y, -0.9, 0.9)), 3)


@cache
def gloss_sign(gloss: str) -> GlossSign:
    """The sign of ``gloss``: a pure function of the string (glosses that look alike need not sign alike)."""
    rng = np.random.default_rng(stable_hash(f"gloss-sign:{gloss}"))
    shape = SHAPES[rng.integers(len(SHAPES))]
    path = PATHS[rng.integers(len(PATHS))]
    handedness = HANDEDNESS[rng.choice(len(HANDEDNESS), p=_HANDEDNESS_WEIGHTS)]
    start_x, start_y = rng.uniform(-0.3, 0.8), rng.uniform(-0.8, 0.5)
    angle, length = rng.uniform(0.0, 2 * np.pi), rng.uniform(0.3, 0.8)
    left_shape = SHAPES[rng.integers(len(SHAPES))] if handedness == "base" else shape
    return GlossSign(
        gloss=gloss,
        shape=shape,
        path=path,
        start=_point(start_x, start_y),
        end=_point(start_x + length * np.cos(angle), start_y + length * np.sin(angle)),
        handedness=handedness,
        left_shape=left_shape,
        left_location=_point(rng.uniform(-0.6, -0.1), rng.uniform(-0.3, 0.5)),
    )


# --------------------------------------------------------------------------------------------
# Timing: fill exactly the video's frames
# --------------------------------------------------------------------------------------------


def allocate_frames(weights: np.ndarray, total: int, minimum: np.ndarray) -> np.ndarray:
    """Split ``total`` frames over segments in proportion to ``weights`` (largest remainder).

    Args:
        weights: (N,) positive floats, one per segment.
        total: frames to hand out; the result sums to it exactly.
        minimum: (N,) ints each segment gets first; they must sum to at most ``total``.

    Returns:
        (N,) int64 frame counts.
    """
    spare = total - int(minimum.sum())
    share = weights / weights.sum() * spare  # (N,)
    counts = np.floor(share).astype(np.int64)
    leftover = spare - int(counts.sum())
    # Ties go to the earlier segment (stable sort), so the split is deterministic.
    counts[np.argsort(-(share - counts), kind="stable")[:leftover]] += 1
    return counts + minimum


def segment_frames(
    num_glosses: int, num_frames: int, signer: SyntheticSigner, rng: np.random.Generator
) -> np.ndarray:
    """Frames of each segment: rest, (transition, sign) per gloss, transition, rest.

    Durations follow the synthetic corpus's base lengths (signs scaled by the signer's speed),
    each jittered by up to ±15 % (±30 % for a jittery signer), then stretched to ``num_frames``.
    Every sign gets at least one frame when ``num_frames >= num_glosses``; with fewer frames
    only signs get frames (the later ones of a tie may get none).

    Returns:
        (2 * num_glosses + 3,) int64 counts summing to ``num_frames``.
    """
    sign_weight = BASE_SIGN_FRAMES / signer.speed
    weights = np.array(
        [
            REST_FRAMES,
            *[BASE_TRANSITION_FRAMES, sign_weight] * num_glosses,
            BASE_TRANSITION_FRAMES,
            REST_FRAMES,
        ],
        dtype=np.float64,
    )
    amplitude = _DURATION_JITTER[min(signer.jitter, 1)]
    weights *= rng.uniform(1 - amplitude, 1 + amplitude, size=len(weights))
    is_sign = np.zeros(len(weights), bool)
    is_sign[2 : 2 * num_glosses + 1 : 2] = True
    if num_frames < num_glosses:
        weights = np.where(is_sign, weights, 0.0)
        return allocate_frames(weights, num_frames, np.zeros(len(weights), np.int64))
    return allocate_frames(weights, num_frames, is_sign.astype(np.int64))


def _sign_hold(sign: GlossSign, right: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Left-hand positions (F, 2) and both hands' shapes for right-hand positions (F, 2)."""
    if sign.handedness == "mirrored":
        return right * np.array([-1.0, 1.0]), sign.shape, sign.shape
    if sign.handedness == "base":
        return np.repeat(np.asarray(sign.left_location)[None], len(right), 0), sign.shape, sign.left_shape
    return np.repeat(REST.left[None], len(right), 0), sign.shape, REST.left_shape


def gloss_track(
    glosses: tuple[str, ...], num_frames: int, signer: SyntheticSigner, rng: np.random.Generator
) -> Track:
    """Rest → transition → sign → … → transition → rest, for both hands, exactly ``num_frames`` long."""
    counts = segment_frames(len(glosses), num_frames, signer, rng)
    track = Track()
    track.hold(REST, int(counts[0]))
    previous = REST
    for index, gloss in enumerate(glosses):
        transition, length = int(counts[1 + 2 * index]), int(counts[2 + 2 * index])
        shift = rng.uniform(-SIGN_JITTER, SIGN_JITTER, size=2)  # drawn even for a dropped sign
        if length == 0:
            track.hold(previous, transition)
            continue
        sign = gloss_sign(gloss)
        right = path_points(sign.spec, length) + shift  # (F, 2)
        left, right_shape, left_shape = _sign_hold(sign, right)
        track.move(previous, Hold(right[0], left[0], right_shape, left_shape), transition)
        track.add(right, left, right_shape, left_shape)
        previous = Hold(right[-1], left[-1], right_shape, left_shape)
    track.move(previous, REST, int(counts[-2]))
    track.hold(REST, int(counts[-1]))
    return track


# --------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------


def _paint_hand(
    frames: np.ndarray,
    centres: np.ndarray,
    shapes: list[str],
    grid: tuple[np.ndarray, np.ndarray],
    radius: float,
    colour: tuple[int, int, int],
) -> None:
    """Paint one hand into every frame, one numpy pass per hand shape.

    Args:
        frames: (T, S, S, 3) uint8, painted in place.
        centres: (T, 2) hand centres in signing-space units.
        shapes: T hand-shape names.
        grid: pixel-centre x and y coordinates, (S, S) each.
    """
    shape_of_frame = np.asarray(shapes)
    for shape in sorted(set(shapes)):
        index = np.flatnonzero(shape_of_frame == shape)  # (n,)
        dx = grid[0][None] - centres[index, 0, None, None]  # (n, S, S)
        dy = grid[1][None] - centres[index, 1, None, None]
        mask = hand_mask(shape, dx, dy, radius)  # (n, S, S)
        frames[index] = np.where(mask[..., None], np.asarray(colour, np.uint8), frames[index])


def render_gloss_clip(
    glosses: tuple[str, ...],
    num_frames: int,
    signer: SyntheticSigner,
    rng: np.random.Generator,
    image_size: int = 32,
) -> np.ndarray:
    """Sign ``glosses`` in exactly ``num_frames`` frames: uint8 (num_frames, S, S, 3), S = ``image_size``.

    An empty gloss sequence gives a signer standing at rest.
    """
    track = gloss_track(glosses, num_frames, signer, rng)
    axis = (np.arange(image_size) + 0.5) / image_size * 2 - 1  # pixel centres in [-1, 1]
    grid = np.meshgrid(axis, axis)  # x varies along columns, y along rows
    frames = np.repeat(paint_figure(signer, image_size, grid)[None], num_frames, axis=0)  # (T, S, S, 3)
    radius = HAND_RADIUS * signer.hand_scale
    offset = np.asarray(signer.offset)
    for positions, shapes in ((track.left, track.left_shapes), (track.right, track.right_shapes)):
        centres = np.concatenate(positions) * signer.space_scale + offset  # (T, 2)
        _paint_hand(frames, centres, shapes, grid, radius, signer.hand_colour)
    return frames


# --------------------------------------------------------------------------------------------
# Signers and videos of a corpus
# --------------------------------------------------------------------------------------------


def assign_signers(
    rows: Sequence[tuple[str, str | None]], num_signers: int, seed: int
) -> dict[str, SyntheticSigner]:
    """The rendered signer of each ``(name, signer id or None)`` row, by name.

    Distinct ids, in natural sort order, get ``signer01``, ``signer02``, …; a row without an
    id gets the signer a stable hash of its name picks.

    Raises:
        ValueError: more distinct ids than ``num_signers``.
    """
    signers = make_signers(num_signers, seed)
    ids = sorted({signer for _, signer in rows if signer}, key=natural_key)
    if len(ids) > num_signers:
        shown = ", ".join(ids[:12]) + (", …" if len(ids) > 12 else "")
        raise ValueError(
            f"The annotations name {len(ids)} signers ({shown}) but num_signers={num_signers}; "
            f"pass num_signers={len(ids)} (at most 10)."
        )
    by_id = dict(zip(ids, signers, strict=False))
    return {
        name: by_id[signer] if signer else signers[stable_hash(f"signer:{name}") % num_signers]
        for name, signer in rows
    }


class VideoJob(NamedTuple):
    """Everything one worker needs to render and write one video (``path``: file or frame folder)."""

    glosses: tuple[str, ...]
    num_frames: int
    signer: SyntheticSigner
    image_size: int
    seed: int
    name: str
    path: Path
    video_format: str


def render_job(job: VideoJob) -> None:
    """Render one video and write it as a PNG frame folder or a lossless mp4."""
    # Each video has its own random stream, keyed by its name: it does not depend on the others.
    rng = np.random.default_rng([job.seed, stable_hash(f"video:{job.name}")])
    frames = render_gloss_clip(job.glosses, job.num_frames, job.signer, rng, job.image_size)
    if job.video_format == "mp4":
        job.path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(frames, job.path)
    else:
        write_frame_folder(frames, job.path)


def run_jobs(jobs: list[VideoJob], num_workers: int, show_progress: bool = False) -> None:
    """Run every job, in ``num_workers`` threads; a bar on stderr if asked."""
    bar = tqdm(total=len(jobs), desc="rendering the gloss signs", unit="video", disable=not show_progress)
    with bar:
        for _ in map_in_threads(render_job, jobs, num_workers):
            bar.update()
