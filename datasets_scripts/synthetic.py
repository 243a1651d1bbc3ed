"""A built-in synthetic sign language: weather reports signed by coloured hand shapes.

It is the default corpus of ``scl-slt demo``, of the tests and of the ablations: it trains on a
2-core CPU in minutes, yet keeps what makes sign language translation and SCL interesting —
the sign order is not the word order, signers differ, and sentences repeat.

Signs
    29 signs (:data:`SIGN_LEXICON`). A sign is one or two hand shapes (circle, square,
    triangle, diamond, bar) moving along a path (line, arc, loop, zigzag, back-and-forth) from
    a location in the signing space in a direction. Shape, path, direction, location and
    one- vs two-handedness all carry meaning: NORTH and SOUTH differ only by direction, RAIN
    and SNOW only by path, FOG and FROST only by shape and height. A figure (head and torso)
    gives the signing space a reference. Two-handed signs mirror the right hand's path.

Grammar (English text, 36 words; sign order = topic first, time last, no function words)
    ================================================= ======================================
    text                                              signs (``gloss`` column)
    ================================================= ======================================
    TIME in the REGION [INTENSITY] WEATHER [and TEMP] REGION WEATHER [INTENSITY] [TEMP] TIME
    TIME the temperatures rise|fall in the REGION     REGION TEMPERATURE RISE|FALL TIME
    TIME the wind comes from the DIRECTION            WIND FROM DIRECTION TIME
    TIME it stays dry|cloudy in the REGION            REGION DRY|CLOUDY TIME
    ================================================= ======================================

    TIME: today, tomorrow, tonight, monday, friday. REGION: north, south, east, west,
    mountains ("in the"), coast ("on the"). DIRECTION: north, south, east, west. INTENSITY:
    strong, light. WEATHER: rain, snow, sun, fog, wind, storms. TEMP: cold, warm, mild,
    frosty. Example: "tomorrow in the north strong rain and cold" is signed
    ``NORTH RAIN STRONG COLD TOMORROW``. Sentences have 5–8 words and 3–5 signs; the grammar
    yields about 2,800 distinct sentences.

Signers
    ``num_signers`` signers (default 8) differ in hand colour, hand size, background and
    clothing shade, position offset, size of the signing space, speed (frames per sign) and
    timing jitter. The last ``num_unseen_signers`` (default 1) never sign in the training
    split: they sign ``unseen_signer_fraction`` (default half) of the validation and test
    videos, so both hold signing variation (a new hand colour, background and
    offset/speed combination) that training never saw.

Duplicates (the false negatives SCL exists for)
    In every split, a video re-signs an earlier sentence of the split by another signer with
    probability ``repeat_fraction`` (default 0.3), or signs a near-duplicate of an earlier
    sentence — the same sentence with exactly one word changed — with probability
    ``near_duplicate_fraction`` (default 0.2); otherwise it signs a fresh sentence from the
    grammar. ``make_synthetic_corpus(out, **DUPLICATE_RICH)`` builds the duplicate-rich
    variant used by the ablations.

Sizes and timing
    Frames are ``frame_size`` × ``frame_size`` RGB (default 64), 25 fps. A sign lasts 4–9
    frames (6 at speed 1), a transition 1–3, a clip 21–66 (about 40 on average). Videos per
    split (train/validation/test): tiny 24/6/6, small 200/40/40, default 800/100/100,
    large 4000/400/400, or an int ``n`` for n/max(4, n//8)/max(4, n//8). The default corpus
    takes about 10 s to generate on a 2-core CPU (13 MB of mp4, or 43k PNG files).
    A small CNN + 2-layer transformer (frames average-pooled to 32×32) reached 95 BLEU-4 on
    the default validation split after 5.5 minutes of CPU training.

Files
    ``<out_dir>/manifest.csv`` (or ``.jsonl``) with columns ``name, video, text, split,
    signer, gloss, language`` — the format read by
    :func:`datasets_scripts.manifest.load_sign_corpus` — and one video per row: a lossless
    H.264 RGB ``.mp4`` (``libx264rgb``, qp 0: decoded pixels equal the rendered ones) under
    ``videos/<split>/``, or a folder of PNG frames ``0001.png, 0002.png, …`` under
    ``frames/<split>/`` with ``video_format="frames"``. Everything is a pure function of the
    seed and the arguments: the manifest is byte-identical and the decoded frames are
    identical across runs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import av
import numpy as np
from PIL import Image

__all__ = [
    "DUPLICATE_RICH",
    "SIGN_LEXICON",
    "SIZE_PRESETS",
    "SignSpec",
    "SyntheticSentence",
    "SyntheticSigner",
    "make_signers",
    "make_synthetic_corpus",
    "render_clip",
    "sample_sentence",
]

Shape = Literal["circle", "square", "triangle", "diamond", "bar"]
Path_ = Literal["line", "arc", "loop", "loop_ccw", "zigzag", "repeat"]

SPLITS = ("train", "validation", "test")
FPS = 25
LANGUAGE = "en"
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (24, 6, 6),
    "small": (200, 40, 40),
    "default": (800, 100, 100),
    "large": (4000, 400, 400),
}
# Knob values for the duplicate-rich corpus of the ablations: most videos repeat a sentence.
DUPLICATE_RICH: dict[str, float] = {"repeat_fraction": 0.6, "near_duplicate_fraction": 0.3}


# --------------------------------------------------------------------------------------------
# The lexicon: one entry per sign
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignSpec:
    """How one sign looks. Coordinates are in the signing space: x, y in [-1, 1], y pointing down.

    ``start``/``end`` are the right hand's path ends; a two-handed sign moves the left hand along
    the mirror image (x → -x). ``loop`` paths circle once around the midpoint of start and end;
    ``repeat`` goes start → end → start twice.
    """

    gloss: str
    shape: Shape
    path: Path_
    start: tuple[float, float]
    end: tuple[float, float]
    two_handed: bool = False


def _sign(
    gloss: str,
    shape: Shape,
    path: Path_,
    start: tuple[float, float],
    end: tuple[float, float],
    two_handed: bool = False,
) -> SignSpec:
    return SignSpec(gloss, shape, path, start, end, two_handed)


SIGN_LEXICON: dict[str, SignSpec] = {
    spec.gloss: spec
    for spec in [
        # Regions: a square moving in the compass direction; coast = waves, mountains = a peak.
        _sign("NORTH", "square", "line", (0.30, 0.35), (0.30, -0.45)),
        _sign("SOUTH", "square", "line", (0.30, -0.45), (0.30, 0.35)),
        _sign("EAST", "square", "line", (-0.25, 0.05), (0.65, 0.05)),
        _sign("WEST", "square", "line", (0.65, 0.05), (-0.25, 0.05)),
        _sign("COAST", "diamond", "zigzag", (-0.55, 0.45), (0.60, 0.45)),
        _sign("MOUNTAINS", "triangle", "arc", (0.65, 0.35), (0.15, -0.30), two_handed=True),
        # Times: circles around the head and shoulders.
        _sign("TODAY", "circle", "line", (0.35, -0.15), (0.35, 0.35), two_handed=True),
        _sign("TOMORROW", "circle", "arc", (0.30, -0.55), (0.80, -0.25)),
        _sign("TONIGHT", "circle", "arc", (0.20, -0.80), (0.65, -0.20), two_handed=True),
        _sign("MONDAY", "circle", "loop", (0.45, 0.05), (0.80, 0.05)),
        _sign("FRIDAY", "circle", "loop_ccw", (-0.80, 0.05), (-0.45, 0.05)),
        # Weather.
        _sign("RAIN", "diamond", "line", (0.45, -0.70), (0.45, 0.30), two_handed=True),
        _sign("SNOW", "diamond", "zigzag", (0.45, -0.70), (0.45, 0.30), two_handed=True),
        _sign("SUN", "circle", "loop", (-0.25, -0.80), (0.25, -0.80)),
        _sign("FOG", "square", "line", (0.75, -0.20), (0.22, -0.20), two_handed=True),
        _sign("WIND", "triangle", "zigzag", (-0.60, -0.10), (0.70, -0.10)),
        _sign("STORM", "triangle", "zigzag", (0.20, -0.80), (0.50, 0.40)),
        _sign("CLOUDY", "diamond", "loop", (0.50, -0.55), (0.85, -0.55), two_handed=True),
        _sign("DRY", "bar", "line", (0.60, -0.35), (0.00, -0.35)),
        # Intensity.
        _sign("STRONG", "square", "repeat", (0.40, -0.10), (0.40, 0.25), two_handed=True),
        _sign("LIGHT", "diamond", "arc", (0.20, 0.30), (0.60, -0.10)),
        # Temperature.
        _sign("COLD", "square", "repeat", (0.30, 0.15), (0.55, 0.15), two_handed=True),
        _sign("WARM", "triangle", "loop", (-0.15, 0.15), (0.20, 0.15)),
        _sign("MILD", "diamond", "line", (0.00, -0.30), (0.00, 0.45)),
        _sign("FROST", "triangle", "line", (0.75, 0.15), (0.22, 0.15), two_handed=True),
        _sign("TEMPERATURE", "bar", "repeat", (-0.45, -0.20), (-0.45, 0.15)),
        _sign("RISE", "bar", "line", (0.45, 0.40), (0.45, -0.60)),
        _sign("FALL", "bar", "line", (0.45, -0.60), (0.45, 0.40)),
        _sign("FROM", "triangle", "arc", (0.80, -0.30), (0.15, 0.00)),
    ]
}

# --------------------------------------------------------------------------------------------
# The grammar: slots → (text, sign sequence)
# --------------------------------------------------------------------------------------------

TIMES = ("today", "tomorrow", "tonight", "monday", "friday")
REGIONS = ("north", "south", "east", "west", "mountains", "coast")
DIRECTIONS = ("north", "south", "east", "west")
INTENSITIES = ("", "strong", "light")  # "" = no intensity
WEATHERS = ("rain", "snow", "sun", "fog", "wind", "storms")
TEMPERATURES = ("", "cold", "warm", "mild", "frosty")  # "" = no temperature clause
TRENDS = ("rise", "fall")
STATES = ("dry", "cloudy")

# The sentence types and how often each is drawn; a near-duplicate may change any slot.
TEMPLATE_SLOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "weather": {
        "time": TIMES,
        "region": REGIONS,
        "intensity": INTENSITIES,
        "weather": WEATHERS,
        "temperature": TEMPERATURES,
    },
    "trend": {"time": TIMES, "trend": TRENDS, "region": REGIONS},
    "wind": {"time": TIMES, "direction": DIRECTIONS},
    "state": {"time": TIMES, "state": STATES, "region": REGIONS},
}
TEMPLATE_WEIGHTS = {"weather": 0.6, "trend": 0.15, "wind": 0.1, "state": 0.15}

# Words whose sign gloss is not simply the upper-cased word.
_GLOSS_OF_WORD = {"storms": "STORM", "frosty": "FROST"}


@dataclass(frozen=True)
class SyntheticSentence:
    """A sentence of the grammar: its template, its slot values, its text and its signs."""

    template: str
    slots: tuple[tuple[str, str], ...]  # (slot name, value) in template order

    @property
    def values(self) -> dict[str, str]:
        return dict(self.slots)

    @property
    def text(self) -> str:
        """The written English sentence (lower case, words separated by single spaces)."""
        v = self.values
        place = f"{'on' if v.get('region') == 'coast' else 'in'} the {v.get('region')}"
        if self.template == "weather":
            words = [v["time"], place, v["intensity"], v["weather"]]
            if v["temperature"]:
                words.append(f"and {v['temperature']}")
        elif self.template == "trend":
            words = [v["time"], "the temperatures", v["trend"], place]
        elif self.template == "wind":
            words = [v["time"], "the wind comes from the", v["direction"]]
        else:
            words = [v["time"], "it stays", v["state"], place]
        return " ".join(word for word in words if word)

    @property
    def glosses(self) -> tuple[str, ...]:
        """The sign sequence: topic (place or wind) first, time last, no function words."""
        v = self.values
        if self.template == "weather":
            order = [v["region"], v["weather"], v["intensity"], v["temperature"], v["time"]]
        elif self.template == "trend":
            order = [v["region"], "temperature", v["trend"], v["time"]]
        elif self.template == "wind":
            order = ["wind", "from", v["direction"], v["time"]]
        else:
            order = [v["region"], v["state"], v["time"]]
        return tuple(_GLOSS_OF_WORD.get(word, word.upper()) for word in order if word)


def sample_sentence(rng: np.random.Generator) -> SyntheticSentence:
    """Draw a fresh sentence: a template by :data:`TEMPLATE_WEIGHTS`, then every slot uniformly."""
    names = list(TEMPLATE_WEIGHTS)
    template = names[rng.choice(len(names), p=list(TEMPLATE_WEIGHTS.values()))]
    slots = tuple((slot, str(rng.choice(values))) for slot, values in TEMPLATE_SLOTS[template].items())
    return SyntheticSentence(template, slots)


def _differs_by_one_word(a: str, b: str) -> bool:
    words_a, words_b = a.split(), b.split()
    return len(words_a) == len(words_b) and sum(x != y for x, y in zip(words_a, words_b, strict=True)) == 1


def near_duplicate(sentence: SyntheticSentence, rng: np.random.Generator) -> SyntheticSentence:
    """The same sentence with one slot changed so that exactly one word differs."""
    slot_names = [name for name, _ in sentence.slots]
    for _ in range(100):
        slot = slot_names[rng.integers(len(slot_names))]
        choices = [
            value for value in TEMPLATE_SLOTS[sentence.template][slot] if value != sentence.values[slot]
        ]
        new_value = choices[rng.integers(len(choices))]
        candidate = SyntheticSentence(
            sentence.template,
            tuple((name, new_value if name == slot else value) for name, value in sentence.slots),
        )
        # Some swaps change two words ("in the mountains" → "on the coast") or drop one.
        if _differs_by_one_word(sentence.text, candidate.text):
            return candidate
    raise RuntimeError(f"no one-word variation found for {sentence.text!r}")


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


def _path_points(spec: SignSpec, num_frames: int) -> np.ndarray:
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


def _hand_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
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


class _Hold(NamedTuple):
    """Both hands at one moment: positions (2,) in signing-space units and hand shapes."""

    right: np.ndarray
    left: np.ndarray
    right_shape: str
    left_shape: str


REST = _Hold(np.array(REST_RIGHT), np.array(REST_LEFT), "circle", "circle")


@dataclass
class _Track:
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

    def hold(self, pose: _Hold, num_frames: int) -> None:
        self.add(
            np.repeat(pose.right[None], num_frames, 0),
            np.repeat(pose.left[None], num_frames, 0),
            pose.right_shape,
            pose.left_shape,
        )

    def move(self, previous: _Hold, target: _Hold, num_frames: int) -> None:
        """Straight moves between two holds; the hands keep their previous shapes on the way."""
        t = np.arange(1, num_frames + 1)[:, None] / (num_frames + 1)  # (F, 1), excludes both ends
        right = previous.right + t * (target.right - previous.right)
        left = previous.left + t * (target.left - previous.left)
        self.add(right, left, previous.right_shape, previous.left_shape)


def _duration(base: int, signer: SyntheticSigner, rng: np.random.Generator, minimum: int) -> int:
    """Frames of a sign or transition: the base length over the signer's speed, plus jitter."""
    jitter = int(rng.integers(-signer.jitter, signer.jitter + 1))
    return max(minimum, round(base / signer.speed) + jitter)


def _hand_track(glosses: tuple[str, ...], signer: SyntheticSigner, rng: np.random.Generator) -> _Track:
    """Rest → sign → transition → sign … → rest, for both hands, in signing-space units."""
    track = _Track()
    track.hold(REST, REST_FRAMES)
    previous = REST
    for gloss in glosses:
        spec = SIGN_LEXICON[gloss]
        num_frames = _duration(BASE_SIGN_FRAMES, signer, rng, minimum=4)
        right = _path_points(spec, num_frames) + rng.uniform(-SIGN_JITTER, SIGN_JITTER, size=2)  # (F, 2)
        # The left hand mirrors a two-handed sign and otherwise rests.
        left = right * np.array([-1.0, 1.0]) if spec.two_handed else np.repeat(REST.left[None], num_frames, 0)
        left_shape = spec.shape if spec.two_handed else REST.left_shape
        transition = _duration(BASE_TRANSITION_FRAMES, signer, rng, minimum=1)
        track.move(previous, _Hold(right[0], left[0], spec.shape, left_shape), transition)
        track.add(right, left, spec.shape, left_shape)
        previous = _Hold(right[-1], left[-1], spec.shape, left_shape)
    track.move(previous, REST, BASE_TRANSITION_FRAMES)
    track.hold(REST, REST_FRAMES)
    return track


def _figure(signer: SyntheticSigner, frame_size: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
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
    frames = np.repeat(_figure(signer, frame_size, grid)[None], len(right), axis=0)
    radius = HAND_RADIUS * signer.hand_scale
    for positions, shapes in ((left, track.left_shapes), (right, track.right_shapes)):
        # Movements scale around the chest; the whole figure then shifts by the signer's offset.
        centres = positions * signer.space_scale + np.asarray(signer.offset)  # (T, 2)
        for frame_index, (centre, shape) in enumerate(zip(centres, shapes, strict=True)):
            mask = _hand_mask(shape, grid[0] - centre[0], grid[1] - centre[1], radius)
            frames[frame_index][mask] = signer.hand_colour
    return frames


# --------------------------------------------------------------------------------------------
# Writing videos and the manifest
# --------------------------------------------------------------------------------------------


def write_mp4(frames: np.ndarray, path: Path) -> None:
    """Write (T, H, W, 3) uint8 RGB frames as lossless H.264 RGB (``libx264rgb``, qp 0) at 25 fps."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "veryfast"}
        stream.thread_count = 1  # one thread keeps the bitstream byte-identical across machines' core counts
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frame_folder(frames: np.ndarray, folder: Path) -> None:
    """Write (T, H, W, 3) uint8 frames as ``0001.png``, ``0002.png``, … in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # frames of an earlier, longer clip would join this one
        stale.unlink()
    for index, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"{index:04d}.png", compress_level=1)


@dataclass(frozen=True)
class _Row:
    name: str
    split: str
    sentence: SyntheticSentence
    signer: SyntheticSigner


def _split_sizes(size: str | int) -> tuple[int, int, int]:
    if isinstance(size, str):
        if size not in SIZE_PRESETS:
            raise ValueError(f"size must be one of {sorted(SIZE_PRESETS)} or a positive int, got {size!r}")
        return SIZE_PRESETS[size]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be one of {sorted(SIZE_PRESETS)} or a positive int, got {size!r}")
    held_out = max(4, size // 8)
    return size, held_out, held_out


def _plan_split(
    split: str,
    num_videos: int,
    seen: list[SyntheticSigner],
    unseen: list[SyntheticSigner],
    options: dict[str, float],
    rng: np.random.Generator,
) -> list[_Row]:
    """Choose every video's sentence and signer: fresh, repeated or near-duplicate sentences."""
    rows: list[_Row] = []
    for index in range(num_videos):
        draw = rng.random()
        if rows and draw < options["repeat_fraction"]:
            sentence = rows[rng.integers(len(rows))].sentence
        elif rows and draw < options["repeat_fraction"] + options["near_duplicate_fraction"]:
            sentence = near_duplicate(rows[rng.integers(len(rows))].sentence, rng)
        else:
            sentence = sample_sentence(rng)
        use_unseen = split != "train" and unseen and rng.random() < options["unseen_signer_fraction"]
        pool = unseen if use_unseen else seen
        # A repeated sentence goes to a signer who has not signed it yet, when one is left.
        taken = {row.signer.name for row in rows if row.sentence == sentence}
        fresh = [signer for signer in pool if signer.name not in taken] or pool
        signer = fresh[rng.integers(len(fresh))]
        rows.append(_Row(f"{split}-{index:05d}-{signer.name}", split, sentence, signer))
    return rows


def _write_manifest(rows: list[dict[str, str]], path: Path) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def make_synthetic_corpus(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: Literal["tiny", "small", "default", "large"] | int = "default",
    frame_size: int = 64,
    video_format: Literal["mp4", "frames"] = "mp4",
    manifest_format: Literal["csv", "jsonl"] = "csv",
    num_signers: int = 8,
    num_unseen_signers: int = 1,
    unseen_signer_fraction: float = 0.5,
    repeat_fraction: float = 0.3,
    near_duplicate_fraction: float = 0.2,
) -> Path:
    """Generate the synthetic weather-report corpus and return the path of its manifest.

    Args:
        out_dir: folder to write into (created if missing); existing files of the same name are replaced.
        seed: every random choice derives from it; the same arguments give the same corpus.
        size: videos per split — a preset of :data:`SIZE_PRESETS` or the number of training
            videos (validation and test then get ``max(4, size // 8)`` each).
        frame_size: frame height and width in pixels (at least 16).
        video_format: ``"mp4"`` (lossless H.264 RGB files) or ``"frames"`` (PNG frame folders).
        manifest_format: ``"csv"`` (``manifest.csv``) or ``"jsonl"`` (``manifest.jsonl``).
        num_signers: signers in total (1–10).
        num_unseen_signers: the last signers, who sign only in validation and test (0 to disable).
        unseen_signer_fraction: share of validation/test videos signed by unseen signers.
        repeat_fraction: probability that a video re-signs an earlier sentence of its split.
        near_duplicate_fraction: probability that a video signs an earlier sentence with one word changed.

    Returns:
        The manifest path, ready for ``load_sign_corpus(path)``.
    """
    options = {
        "repeat_fraction": repeat_fraction,
        "near_duplicate_fraction": near_duplicate_fraction,
        "unseen_signer_fraction": unseen_signer_fraction,
    }
    _check_options(frame_size, video_format, manifest_format, num_signers, num_unseen_signers, options)
    split_sizes = _split_sizes(size)
    out_dir = Path(out_dir)
    signers = make_signers(num_signers, seed)
    seen, unseen = signers[: num_signers - num_unseen_signers], signers[num_signers - num_unseen_signers :]
    manifest_rows = []
    for split_index, (split, num_videos) in enumerate(zip(SPLITS, split_sizes, strict=True)):
        plan_rng = np.random.default_rng([seed, 2, split_index])
        for video_index, row in enumerate(_plan_split(split, num_videos, seen, unseen, options, plan_rng)):
            # Each video has its own random stream, so it does not depend on the others.
            frames = render_clip(
                row.sentence.glosses,
                row.signer,
                np.random.default_rng([seed, 3, split_index, video_index]),
                frame_size,
            )
            manifest_rows.append(_write_video(out_dir, row, frames, video_format))
    manifest_path = out_dir / f"manifest.{manifest_format}"
    _write_manifest(manifest_rows, manifest_path)
    return manifest_path


def _write_video(out_dir: Path, row: _Row, frames: np.ndarray, video_format: str) -> dict[str, str]:
    """Write one clip and return its manifest row (paths relative to ``out_dir``)."""
    if video_format == "mp4":
        relative = Path("videos") / row.split / f"{row.name}.mp4"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(frames, out_dir / relative)
    else:
        relative = Path("frames") / row.split / row.name
        write_frame_folder(frames, out_dir / relative)
    return {
        "name": row.name,
        "video": relative.as_posix(),
        "text": row.sentence.text,
        "split": row.split,
        "signer": row.signer.name,
        "gloss": " ".join(row.sentence.glosses),
        "language": LANGUAGE,
    }


def _check_options(
    frame_size: int,
    video_format: str,
    manifest_format: str,
    num_signers: int,
    num_unseen_signers: int,
    fractions: dict[str, float],
) -> None:
    if not isinstance(frame_size, int) or frame_size < 16:
        raise ValueError(f"frame_size must be an int of at least 16 pixels, got {frame_size!r}")
    if video_format not in ("mp4", "frames"):
        raise ValueError(f"video_format must be 'mp4' or 'frames', got {video_format!r}")
    if manifest_format not in ("csv", "jsonl"):
        raise ValueError(f"manifest_format must be 'csv' or 'jsonl', got {manifest_format!r}")
    if not 0 <= num_unseen_signers < num_signers:
        raise ValueError(
            f"num_unseen_signers must leave a training signer, got {num_unseen_signers} of {num_signers}"
        )
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if fractions["repeat_fraction"] + fractions["near_duplicate_fraction"] > 1.0:
        raise ValueError("repeat_fraction + near_duplicate_fraction must not exceed 1")
