"""Rendering of the synthetic corpus: its signers and how they sign a sentence into frames.

:func:`make_signers` draws the signers (hand colour and size, background, clothing, offset,
signing-space size, speed, timing jitter); :func:`render_clip` moves the hands of a signer along
the signs' paths (:data:`~datasets_scripts.synthetic.language.SIGN_LEXICON`) and paints the
frames. The corpus-level description is in :mod:`datasets_scripts.synthetic.synthetic_corpus`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .language import SIGN_LEXICON, SignSpec

# --------------------------------------------------------------------------------------------
# Signers
# --------------------------------------------------------------------------------------------

# Bright hand colours that stand out against mid-grey backgrounds and dark clothing.
_HAND_COLOURS = (
    (245, 200, 60),
    (250, 120, 90),
    (120, 225, 120),
    (90, 200, 245),
    (240, 150, 220),
    (250, 250, 250),
    (200, 240, 90),
    (255, 165, 40),
    (170, 160, 255),
    (110, 240, 210),
)


@dataclass(frozen=True)
class SyntheticSigner:
    """How one signer looks and moves.

    ``offset`` shifts the whole figure (signing-space units, 1 = half the frame); ``space_scale``
    scales the signing movements around the chest; ``speed`` divides the frames per sign;
    ``jitter`` is the largest random change (frames) of a sign's or transition's duration.
    """

    name: str
    hand_colour: tuple[int, int, int]
    hand_scale: float
    background: tuple[int, int, int]
    clothing: tuple[int, int, int]
    offset: tuple[float, float]
    space_scale: float
    speed: float
    jitter: int


def make_signers(num_signers: int, seed: int) -> list[SyntheticSigner]:
    """``num_signers`` signers named ``signer01``, ``signer02``, …, drawn from ``seed``."""
    if not 1 <= num_signers <= len(_HAND_COLOURS):
        raise ValueError(f"num_signers must be between 1 and {len(_HAND_COLOURS)}, got {num_signers}")
    rng = np.random.default_rng([seed, 1])
    signers = []
    for index in range(num_signers):
        grey = int(rng.integers(85, 165))
        tint = rng.integers(-12, 13, size=3)
        signers.append(
            SyntheticSigner(
                name=f"signer{index + 1:02d}",
                hand_colour=_HAND_COLOURS[index],
                hand_scale=round(float(rng.uniform(0.85, 1.15)), 3),
                background=tuple(int(np.clip(grey + t, 0, 255)) for t in tint),
                clothing=tuple(int(c) for c in rng.integers(20, 60, size=3)),
                offset=(round(float(rng.uniform(-0.08, 0.08)), 3), round(float(rng.uniform(-0.05, 0.05)), 3)),
                space_scale=round(float(rng.uniform(0.9, 1.1)), 3),
                speed=round(float(rng.uniform(0.8, 1.25)), 3),
                jitter=int(rng.integers(0, 2)),
            )
        )
    return signers


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

BASE_SIGN_FRAMES = 6  # frames per sign at speed 1
BASE_TRANSITION_FRAMES = 2
REST_FRAMES = 2  # still frames before the first and after the last sign
HAND_RADIUS = 0.15  # signing-space units
REST_RIGHT, REST_LEFT = (0.45, 0.85), (-0.45, 0.85)
SIGN_JITTER = 0.04  # largest random shift of one sign's path, signing-space units


def path_points(spec: SignSpec, num_frames: int) -> np.ndarray:
    """Right-hand positions along the sign's path: (num_frames, 2) in signing-space units."""
    start, end = np.asarray(spec.start), np.asarray(spec.end)
    t = np.linspace(0.0, 1.0, num_frames)[:, None]  # (F, 1)
    chord = end - start
    normal = np.array([-chord[1], chord[0]])  # chord turned by 90°
    if spec.path == "line":
        return start + t * chord
    if spec.path == "arc":
        return start + t * chord + 4 * t * (1 - t) * 0.35 * normal
    if spec.path == "zigzag":
        triangle_wave = 2 * np.abs(2 * ((2 * t + 0.25) % 1.0) - 1) - 1  # two periods in [-1, 1]
        unit_normal = normal / max(np.linalg.norm(normal), 1e-6)
        return start + t * chord + 0.12 * triangle_wave * unit_normal
    if spec.path == "repeat":
        there_and_back = 1 - np.abs(1 - ((4 * t) % 2.0))  # 0 → 1 → 0 twice
        return start + there_and_back * chord
    centre, direction = (start + end) / 2, (1.0 if spec.path == "loop" else -1.0)
    angle = direction * 2 * np.pi * t[:, 0]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    radius_vector = start - centre
    rotated = np.concatenate(
        [cos * radius_vector[0] - sin * radius_vector[1], sin * radius_vector[0] + cos * radius_vector[1]],
        axis=1,
    )
    return centre + rotated


def hand_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Pixels covered by a hand shape, from offsets ``dx``, ``dy`` (signing-space units) to its centre."""
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.82 * radius
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.2 * radius
    if shape == "triangle":  # apex up
        height = (dy + radius) / (1.9 * radius)  # 0 at the apex, 1 at the base
        return (height >= 0) & (height <= 1) & (np.abs(dx) <= 1.1 * radius * height)
    if shape == "bar":  # upright, like a thermometer
        return (np.abs(dx) <= 0.38 * radius) & (np.abs(dy) <= 1.25 * radius)
    raise ValueError(f"unknown hand shape {shape!r}")


class Hold(NamedTuple):
    """Both hands at one moment: positions (2,) in signing-space units and hand shapes."""

    right: np.ndarray
    left: np.ndarray
    right_shape: str
    left_shape: str


REST = Hold(np.array(REST_RIGHT), np.array(REST_LEFT), "circle", "circle")


@dataclass
class Track:
    """Both hands over a clip: position arrays (F, 2) per segment and one shape per frame and hand."""

    right: list[np.ndarray] = field(default_factory=list)
    left: list[np.ndarray] = field(default_factory=list)
    right_shapes: list[str] = field(default_factory=list)
    left_shapes: list[str] = field(default_factory=list)

    def add(self, right: np.ndarray, left: np.ndarray, right_shape: str, left_shape: str) -> None:
        self.right.append(right)
        self.left.append(left)
        self.right_shapes += [right_shape] * len(right)
        self.left_shapes += [left_shape] * len(left)

    def hold(self, pose: Hold, num_frames: int) -> None:
        self.add(
            np.repeat(pose.right[None], num_frames, 0),
            np.repeat(pose.left[None], num_frames, 0),
            pose.right_shape,
            pose.left_shape,
        )

    def move(self, previous: Hold, target: Hold, num_frames: int) -> None:
        """Straight moves between two holds; the hands keep their previous shapes on the way."""
        t = np.arange(1, num_frames + 1)[:, None] / (num_frames + 1)  # (F, 1), excludes both ends
        right = previous.right + t * (target.right - previous.right)
        left = previous.left + t * (target.left - previous.left)
        self.add(right, left, previous.right_shape, previous.left_shape)


def _duration(base: int, signer: SyntheticSigner, rng: np.random.Generator, minimum: int) -> int:
    """Frames of a sign or transition: the base length over the signer's speed, plus jitter."""
    jitter = int(rng.integers(-signer.jitter, signer.jitter + 1))
    return max(minimum, round(base / signer.speed) + jitter)


def _hand_track(glosses: tuple[str, ...], signer: SyntheticSigner, rng: np.random.Generator) -> Track:
    """Rest → sign → transition → sign … → rest, for both hands, in signing-space units."""
    track = Track()
    track.hold(REST, REST_FRAMES)
    previous = REST
    for gloss in glosses:
        spec = SIGN_LEXICON[gloss]
        num_frames = _duration(BASE_SIGN_FRAMES, signer, rng, minimum=4)
        right = path_points(spec, num_frames) + rng.uniform(-SIGN_JITTER, SIGN_JITTER, size=2)  # (F, 2)
        # The left hand mirrors a two-handed sign and otherwise rests.
        left = right * np.array([-1.0, 1.0]) if spec.two_handed else np.repeat(REST.left[None], num_frames, 0)
        left_shape = spec.shape if spec.two_handed else REST.left_shape
        transition = _duration(BASE_TRANSITION_FRAMES, signer, rng, minimum=1)
        track.move(previous, Hold(right[0], left[0], spec.shape, left_shape), transition)
        track.add(right, left, spec.shape, left_shape)
        previous = Hold(right[-1], left[-1], spec.shape, left_shape)
    track.move(previous, REST, BASE_TRANSITION_FRAMES)
    track.hold(REST, REST_FRAMES)
    return track


def paint_figure(signer: SyntheticSigner, frame_size: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The still background: backdrop, torso and head. (H, W, 3) uint8."""
    x, y = grid[0] - signer.offset[0], grid[1] - signer.offset[1]
    image = np.empty((frame_size, frame_size, 3), np.uint8)
    image[:] = signer.background
    torso = (np.abs(x) <= 0.45 + 0.25 * np.clip(y + 0.3, 0, 1)) & (y >= -0.3)
    head = x**2 + (y + 0.58) ** 2 <= 0.2**2
    image[torso | head] = signer.clothing
    image[head] = tuple(min(255, c + 70) for c in signer.clothing)
    return image


def render_clip(
    glosses: tuple[str, ...], signer: SyntheticSigner, rng: np.random.Generator, frame_size: int = 64
) -> np.ndarray:
    """Render a signed sentence. Returns uint8 frames of shape (T, frame_size, frame_size, 3)."""
    track = _hand_track(glosses, signer, rng)
    right, left = np.concatenate(track.right), np.concatenate(track.left)  # (T, 2) each
    # Pixel centres in signing-space units: x, y in [-1, 1].
    axis = (np.arange(frame_size) + 0.5) / frame_size * 2 - 1
    grid = np.meshgrid(axis, axis)  # x varies along columns, y along rows
    frames = np.repeat(paint_figure(signer, frame_size, grid)[None], len(right), axis=0)
    radius = HAND_RADIUS * signer.hand_scale
    for positions, shapes in ((left, track.left_shapes), (right, track.right_shapes)):
        # Movements scale around the chest; the whole figure then shifts by the signer's offset.
        centres = positions * signer.space_scale + np.asarray(signer.offset)  # (T, 2)
        for frame_index, (centre, shape) in enumerate(zip(centres, shapes, strict=True)):
            mask = hand_mask(shape, grid[0] - centre[0], grid[1] - centre[1], radius)
            frames[frame_index][mask] = signer.hand_colour
    return frames
