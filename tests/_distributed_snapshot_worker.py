"""Run by tests/test_distributed_snapshots.py under `accelerate launch` with 2 CPU processes (gloo).

Both ranks train the reference stage for 2 epochs (a snapshot after each), then run the recipe's
reference analysis. Each rank writes to OUT_DIR: rank{r}.json (the samples its evaluation
collator embedded, the row blocks its similarity series computed, the process-group timeout
before and after training) and state-rank{r}-epoch{e}.pt (its model state at each epoch's end,
before the snapshot). Rank 0 writes the snapshots, trajectories.json and pair_scores.safetensors.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from datasets import DatasetDict
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_trainer import (
    SENTENCES,
    RecordingCollator,
    arguments,
    collators,
    tiny_corpus,
    tiny_model,
)
from trainers.application import recipe
from trainers.application.recipe_config import RecipeConfig
from trainers.application.run_paths import RunPaths
from trainers.application.tokenization import train_tokenizer
from trainers.method.similarity_series import SnapshotSimilaritySeries
from trainers.method.trajectories import analyze_trajectories
from trainers.training.trainer import SclSltTrainer

NUM_SAMPLES = 11  # 4 evaluation batches of 3 (the last one short): rank 0 gets 2, rank 1 gets 2
EVAL_BATCH_SIZE = 3
TRAJECTORY_BLOCK_SIZE = 3  # 4 row blocks: rank 0 computes blocks 0 and 2, rank 1 blocks 1 and 3
SCORE_BLOCK_SIZE = 4  # 3 row blocks: rank 0 computes blocks 0 and 2, rank 1 block 1
TIMEOUT_MINUTES = 47.0


class StateRecorder(TrainerCallback):
    """Saves this rank's model state at the end of every epoch (it runs before the snapshot)."""

    def __init__(self, out_dir: Path, rank: int) -> None:
        self.out_dir, self.rank = out_dir, rank

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        model = getattr(model, "module", model)
        values = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
        torch.save(values, self.out_dir / f"state-rank{self.rank}-epoch{round(state.epoch)}.pt")


def process_group_timeout() -> float:
    return dist.group.WORLD._get_backend(torch.device("cpu")).options._timeout.total_seconds()


def record_blocks(calls: list[list[int]]) -> None:
    """Make every similarity series note the (first row, number of rows) of each block it computes."""
    original = SnapshotSimilaritySeries.block

    def block(self: SnapshotSimilaritySeries, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> Any:
        calls.append([int(rows[0]), len(rows)])
        return original(self, snapshot, rows, cols)

    SnapshotSimilaritySeries.block = block


def main(out_dir: Path) -> None:
    config = RecipeConfig(distributed_timeout_minutes=TIMEOUT_MINUTES)
    config.pair_selection.block_size = SCORE_BLOCK_SIZE
    state = recipe.distributed_state(config)
    rank = state.process_index
    timeout_before = process_group_timeout()

    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    train_collator, eval_collator = collators(tokenizer)
    recorder = RecordingCollator(eval_collator)
    paths = RunPaths(out_dir)
    dataset = tiny_corpus(num_samples=NUM_SAMPLES)
    args = arguments(
        out_dir,
        output_dir=str(out_dir / "reference"),
        stage="reference",
        num_train_epochs=2,
        snapshot_interval=1,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        snapshot_dir=str(paths.snapshots),
        ddp_find_unused_parameters=True,  # the decoder takes no part in contrastive-only training
    )
    trainer = SclSltTrainer(
        model=tiny_model(tokenizer),
        args=args,
        train_dataset=dataset,
        data_collator=train_collator,
        eval_data_collator=recorder,
        processing_class=tokenizer,
        callbacks=[StateRecorder(out_dir, rank)],
    )
    trainer.train()
    timeout_after = process_group_timeout()

    calls: list[list[int]] = []
    record_blocks(calls)
    recipe.analyze_trajectories = functools.partial(analyze_trajectories, block_size=TRAJECTORY_BLOCK_SIZE)
    recipe.analyse_reference_run(config, DatasetDict(train=dataset), paths, report=lambda message: None)
    (out_dir / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world_size": state.num_processes,
                "embedded": recorder.batches,
                "blocks": calls,
                "timeout_before": timeout_before,
                "timeout_after": timeout_after,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    recipe.close_process_group()  # as the CLI does: an open group can abort the exit
