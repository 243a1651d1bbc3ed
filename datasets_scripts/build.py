"""Shared last step of every loader: validated samples → on-disk `datasets` splits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Image, List, Value

from .corpus import LoadReport, OnError, Problem, SignCorpus, resolve_problems
from .frames import natural_key
from .tables import iter_duplicates

SPLIT_ORDER = ("train", "validation", "test")
_SPLIT_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation", "validation": "validation"}


def normalise_split(split: str) -> str:
    """``dev``/``val``/``valid`` → ``validation``; other names are lower-cased and kept."""
    split = split.strip().lower()
    return _SPLIT_ALIASES.get(split, split)


def corpus_features(*, gloss: bool = False, language: bool = False) -> Features:
    """The columns every loader returns.

    - ``name`` (str): unique sample id; ``signer`` (str, "" if unknown);
    - ``gloss`` (str, space-separated glosses) if `gloss`; ``language`` (str) if `language`;
    - ``text`` (str): the spoken-language sentence;
    - ``frames``: ``List(Image())``, one image per frame, decoded lazily to PIL;
    - ``num_frames`` (int32): ``len(frames)``.
    """
    columns: dict[str, Any] = {"name": Value("string"), "signer": Value("string")}
    if language:
        columns["language"] = Value("string")
    if gloss:
        columns["gloss"] = Value("string")
    columns.update(text=Value("string"), frames=List(Image()), num_frames=Value("int32"))
    return Features(columns)


@dataclass
class Sample:
    """One annotated sample on its way into a split.

    Attributes:
        split: Canonical split name (``train``/``validation``/``test``/…).
        source: Annotation file the sample comes from.
        line: Its line in `source` (1-based, header = line 1).
        name: Sample name.
        example: The row to store, keyed like the split's features.
        reasons: Why the sample is bad; empty for a good sample.
    """

    split: str
    source: Path
    line: int
    name: str
    example: dict[str, Any]
    reasons: list[str] = field(default_factory=list)

    def problem(self) -> Problem:
        """All reasons as one problem (one bad sample counts once)."""
        return self.problem_with("; ".join(self.reasons))

    def problem_with(self, reason: str) -> Problem:
        return Problem(self.source, reason, where=f"line {self.line}", name=self.name)


def flag_duplicate_names(samples: Sequence[Sample]) -> None:
    """Mark every repeated name (after its first occurrence) as a bad sample."""
    keys = [(s.name, s.source, s.line) for s in samples]
    for index, first_seen in iter_duplicates(keys):
        samples[index].reasons.append(f"duplicate name, already used at {first_seen}")


def sort_problems(problems: Sequence[Problem], sources: Sequence[Path]) -> list[Problem]:
    """Order problems by file (in load order), then by line."""
    order = {source: index for index, source in enumerate(sources)}
    return sorted(problems, key=lambda p: (order.get(p.source, len(order)), natural_key(p.where or "")))


def settle_problems(
    samples: Sequence[Sample], row_problems: Sequence[Problem], sources: Sequence[Path], on_error: OnError
) -> tuple[list[Sample], list[Problem]]:
    """Apply `on_error` to all problems found so far.

    Returns:
        ``(good_samples, skipped_problems)``.

    Raises:
        CorpusError: listing every problem (``on_error="raise"``, or a whole-file problem).
    """
    flag_duplicate_names(samples)
    problems = [*row_problems, *(s.problem() for s in samples if s.reasons)]
    skipped = resolve_problems(sort_problems(problems, sources), on_error)
    return [s for s in samples if not s.reasons], skipped


def _yield_examples(examples: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    # Module-level (picklable) so `from_generator` can hash it for its cache.
    yield from examples


def build_split(
    examples: list[dict[str, Any]],
    features: Features,
    split: str,
    cache_dir: str | Path | None,
) -> Dataset:
    """Write examples to an on-disk (memory-mapped) arrow file through the `datasets` cache.

    The cache key covers every example, so a changed annotation re-builds the split.
    """
    if not examples:  # from_generator refuses empty generators
        return Dataset.from_dict({column: [] for column in features}, features=features, split=split)
    return Dataset.from_generator(
        _yield_examples,
        features=features,
        gen_kwargs={"examples": examples},
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        split=split,
    )


def build_corpus(
    samples: Sequence[Sample],
    skipped: list[Problem],
    features: Features,
    cache_dir: str | Path | None,
    splits: Sequence[str] | None = None,
) -> SignCorpus:
    """Group good samples by split and build each split.

    Args:
        samples: Good samples only.
        skipped: Problems of the samples that were dropped (goes into the report).
        features: Columns of every split.
        cache_dir: `datasets` cache folder (default: ``HF_DATASETS_CACHE``).
        splits: Splits to create even when they end up empty (e.g. every sample skipped).
    """
    by_split: dict[str, list[dict[str, Any]]] = {split: [] for split in splits or ()}
    for sample in samples:
        by_split.setdefault(sample.split, []).append(sample.example)
    datasets = {
        split: build_split(by_split[split], features, split, cache_dir) for split in ordered_splits(by_split)
    }
    report = LoadReport(num_rows={split: len(ds) for split, ds in datasets.items()}, skipped=skipped)
    return SignCorpus(datasets, report)


def ordered_splits(splits: Iterable[str]) -> list[str]:
    """Distinct split names, ``train``/``validation``/``test`` first, then others by name."""
    rank = {split: index for index, split in enumerate(SPLIT_ORDER)}
    return sorted(set(splits), key=lambda s: (rank.get(s, len(rank)), s))


def requested_splits(splits: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Canonical split names to load; a name not in `available` is a `ValueError`."""
    if splits is None:
        return list(available)
    wanted = [normalise_split(s) for s in splits]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise ValueError(f"splits must be among {', '.join(available)}; got {', '.join(unknown)}.")
    return wanted
