"""Export a corpus to self-contained parquet files (frame bytes embedded, no paths needed).

PHOENIX/CSL splits store frames as file PATHS (decoded lazily); `Dataset.to_parquet`
would write those paths only. `export_parquet` reads the split batch by batch, replaces
every path by the file's bytes (`datasets.table.embed_table_storage`, as `push_to_hub`
does) and streams the batches into one parquet file per split, so memory stays bounded
by one batch and the data is written once. Reload with::

    datasets.load_dataset("parquet", data_files={"train": "out/train.parquet", …})
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from datasets.table import embed_table_storage


def export_split(dataset: Dataset, path: str | Path, *, batch_size: int = 16) -> Path:
    """Write one split to a parquet file with every frame's bytes embedded.

    Args:
        dataset: A split whose ``frames`` (any `Image` column) may hold file paths.
        path: The parquet file to write (parent folders are created).
        batch_size: Rows per parquet row group (one batch of frames is in memory at a time).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The schema carries the `datasets` features, so `load_dataset` decodes Image columns.
    schema = dataset.features.arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        for batch in dataset.with_format("arrow").iter(batch_size=batch_size):
            writer.write_table(embed_table_storage(batch).cast(schema))
    return path


def export_parquet(data: Dataset | DatasetDict, path: str | Path, *, batch_size: int = 16) -> dict[str, Path]:
    """Export a split, or every split of a `DatasetDict`, to self-contained parquet.

    Args:
        data: A `Dataset` (written to `path` itself, a ``.parquet`` file) or a
            `DatasetDict` (written to ``path/<split>.parquet``, `path` being a folder).
        path: Target file (for a `Dataset`) or folder (for a `DatasetDict`).
        batch_size: Rows per parquet row group.

    Returns:
        Split → parquet file, ready for ``load_dataset("parquet", data_files=...)``
        (a single `Dataset` is reported under its split name, default ``"train"``).
    """
    if isinstance(data, DatasetDict):
        folder = Path(path)
        return {
            split: export_split(dataset, folder / f"{split}.parquet", batch_size=batch_size)
            for split, dataset in data.items()
        }
    split = str(data.split) if data.split is not None else "train"
    return {split: export_split(data, path, batch_size=batch_size)}
