"""Errors and reports of the corpus loaders: bad input is reported, never lost.

Every loader collects the problems it finds (a missing frame folder, an empty
sentence, a truncated image, …) as `Problem` objects instead of stopping at the
first one. Then, depending on its `on_error` argument:

- `"raise"` (default): one `CorpusError` lists every problem, with a count;
- `"skip"`: the bad samples are dropped, ONE warning (``logging``) lists each of
  them, and the loader's result carries them in `SignCorpus.report`.

Problems with a whole file (missing annotation file, wrong header, unsafe pickle)
always raise: no sample of that file can be trusted, so there is nothing to skip to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datasets import DatasetDict

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    Attributes:
        source: The file the problem was found in (annotation file, manifest, pickle).
        reason: What is wrong and what was expected, as one user-facing sentence.
        where: Position in `source`, e.g. ``"line 4"``; ``None`` for a whole-file problem.
        name: Name of the sample concerned, if known.
    """

    source: Path
    reason: str
    where: str | None = None
    name: str | None = None

    @property
    def is_sample_problem(self) -> bool:
        """True when the problem concerns one sample (skippable), not the whole file."""
        return self.where is not None

    def __str__(self) -> str:
        if self.where is None:
            return self.reason
        sample = f" (name {self.name!r})" if self.name else ""
        return f"{self.where}{sample}: {self.reason}"


def describe_problems(problems: Sequence[Problem]) -> str:
    """One line of summary ("3 bad samples in /x.csv:") then one line per problem.

    A single whole-file problem is its own sentence and needs no summary.
    """
    if len(problems) == 1 and not problems[0].is_sample_problem:
        return problems[0].reason
    by_source: dict[Path, list[Problem]] = {}
    for problem in problems:
        by_source.setdefault(problem.source, []).append(problem)
    n_samples = sum(p.is_sample_problem for p in problems)
    n_files = len(problems) - n_samples
    counts = []
    if n_samples:
        counts.append(f"{n_samples} bad sample{'s' * (n_samples != 1)}")
    if n_files:
        counts.append(f"{n_files} unusable file{'s' * (n_files != 1)}")
    where = f" in {next(iter(by_source))}" if len(by_source) == 1 else ""
    lines = [f"{' and '.join(counts)}{where}:"]
    for source, source_problems in by_source.items():
        indent = "  "
        if len(by_source) > 1:
            lines.append(f"  in {source}:")
            indent = "    "
        lines.extend(f"{indent}{problem}" for problem in source_problems)
    return "\n".join(lines)


class CorpusError(ValueError):
    """The corpus cannot be loaded as given.

    Attributes:
        problems: Every problem found (all of them, not only the first).
    """

    def __init__(self, problems: Sequence[Problem], hint: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        message = describe_problems(self.problems)
        super().__init__(f"{message}\n{hint}" if hint else message)


class UnsafePickleError(CorpusError):
    """A pickle refers to a Python global (a function or class) and was not loaded."""


@dataclass
class LoadReport:
    """What a loader kept and what it dropped.

    Attributes:
        num_rows: Rows kept per split, e.g. ``{"train": 7096, "validation": 519}``.
        skipped: Every sample dropped with ``on_error="skip"``, with the reason.
    """

    num_rows: dict[str, int] = field(default_factory=dict)
    skipped: list[Problem] = field(default_factory=list)


class SignCorpus(DatasetDict):
    """A `datasets.DatasetDict` that also carries the loader's `LoadReport`.

    The report stays on the object the loader returned; `map`/`filter` return a
    plain `DatasetDict`, so read ``corpus.report`` right after loading.
    """

    report: LoadReport

    def __init__(self, splits: dict, report: LoadReport | None = None) -> None:
        super().__init__(splits)
        self.report = report if report is not None else LoadReport()


def check_on_error(on_error: str) -> None:
    """Fail early and clearly on a misspelt `on_error` argument."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")


def raise_file_problems(problems: Iterable[Problem]) -> None:
    """Raise one `CorpusError` listing all problems if any concerns a whole file."""
    problems = list(problems)
    if any(not p.is_sample_problem for p in problems):
        raise CorpusError(problems)


def resolve_problems(problems: Sequence[Problem], on_error: OnError) -> list[Problem]:
    """Apply the `on_error` policy to sample problems.

    Returns:
        The problems to record as skipped (empty when there are none).

    Raises:
        CorpusError: listing every problem, if ``on_error="raise"`` or any problem
            concerns a whole file.
    """
    if not problems:
        return []
    raise_file_problems(problems)
    if on_error == "raise":
        raise CorpusError(problems, hint="Fix these samples, or pass on_error='skip' to drop them.")
    logger.warning("Skipping %s", describe_problems(problems))
    return list(problems)
