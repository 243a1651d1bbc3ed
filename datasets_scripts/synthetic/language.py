"""The language of the synthetic corpus: its sign lexicon, its grammar and its sentences.

:data:`SIGN_LEXICON` says how each of the 29 signs looks; :data:`TEMPLATE_SLOTS` and
:data:`TEMPLATE_WEIGHTS` define the weather-report grammar; :class:`SyntheticSentence` turns slot
values into English text and a sign sequence; :func:`sample_sentence` and :func:`near_duplicate`
draw fresh and one-word-changed sentences. The corpus-level description is in
:mod:`datasets_scripts.synthetic.synthetic_corpus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Shape = Literal["circle", "square", "triangle", "diamond", "bar"]
Path_ = Literal["line", "arc", "loop", "loop_ccw", "zigzag", "repeat"]


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
