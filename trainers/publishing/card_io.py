"""Reading a run directory for its model card: small JSON / YAML files and the final scores.

Only ``json`` and ``yaml.safe_load`` read the files, so no code runs and no weights load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

SPLITS = {"validation": "dev (validation)", "test": "test"}
BLEU_ORDERS = (1, 2, 3, 4)


# --- reading the run --------------------------------------------------------------------------
def require_file(path: Path, holds: str) -> None:
    """Raise a FileNotFoundError naming ``path`` unless it is a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a model card needs {holds}; "
            "run the recipe to the end or pass the right run_dir"
        )


def read_json_file(path: Path, holds: str) -> dict[str, Any]:
    """A JSON object from ``path`` (one clear error when it is missing or not a JSON object)."""
    require_file(path, holds)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_yaml_file(path: Path, holds: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, read with ``yaml.safe_load`` (no code runs)."""
    require_file(path, holds)
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(value).__name__}")
    return value


def section(recipe: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of the recorded config ({} when absent: older runs lack newer sections)."""
    value = recipe.get(name)
    return value if isinstance(value, dict) else {}


def split_scores(metrics: dict[str, Any], source: str | Path = "metrics.json") -> dict[str, dict[str, float]]:
    """Per split present in ``metrics.json`` (read from ``source``): its numeric BLEU-1..4 and
    ROUGE-L scores."""
    names = [f"bleu{n}" for n in BLEU_ORDERS] + ["rouge_l"]
    scores = {}
    for split in SPLITS:
        values = metrics.get(split)
        if isinstance(values, dict):
            scores[split] = {name: values[name] for name in names if is_number(values.get(name))}
    if not any(scores.values()):
        raise ValueError(f"{source} holds no BLEU / ROUGE-L scores under 'validation' or 'test'")
    return scores


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_optional_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when it is missing or unreadable (card facts only)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
