"""How long the stages of a training plan take: epochs of training steps at measured frames per second.

Times come from frames per second measured on a named device (``benchmarks/RESULTS.md``): without a
measurement for the device, preset, precision and frame size of the run, the plan has no time.
"""

from __future__ import annotations

from ..training.progress import format_duration
from .plan_inputs import PlanDevice
from .recipe_config import RecipeConfig

# (device name, preset, precision, frame side) → training frames per second of one step: both
# losses, full fine-tuning, a batch of 2 clips of 112 frames (benchmarks/RESULTS.md §1, H100 table).
MEASURED_FRAMES_PER_SECOND: dict[tuple[str, str, str, int], float] = {
    ("NVIDIA H100 80GB HBM3", "paper", "bf16", 224): 1243.0,
    ("NVIDIA H100 80GB HBM3", "paper", "fp32", 224): 1472.0,
    ("NVIDIA H100 80GB HBM3", "small", "bf16", 224): 4112.0,
}
# Training videos and their frames, by corpus kind (the official train split; ../shared/data).
TRAINING_CLIPS: dict[str, tuple[int, int]] = {
    "phoenix2014t": (7096, 827_354),  # median 112 frames, longest 475 (23 clips above 300)
}


def time_estimate(config: RecipeConfig, device: PlanDevice) -> list[str]:
    """Lines on the training time per epoch and per stage, or one line on why there is none."""
    if config.video.features is not None:
        return [
            "no estimate: frames/s were measured with the backbone running; on frame features it does not"
        ]
    precision = device.autocast or "fp32"
    name = device.name
    key = measured_key(name, config.model.preset, precision, config.video.image_size)
    if device.kind != "gpu" or key is None:
        known = ", ".join(sorted({f"{d} ({p}, {q}, {s}²)" for d, p, q, s in MEASURED_FRAMES_PER_SECOND}))
        where = name or ("an unnamed GPU" if device.kind == "gpu" else "a CPU")
        return [
            f"no estimate: no frames/s measured for {where}, preset {config.model.preset}, {precision} at "
            f"{config.video.image_size}² (measured: {known}; --device-name picks one)"
        ]
    if config.corpus.kind not in TRAINING_CLIPS:
        return [f"no estimate: the clip count and length of a {config.corpus.kind} corpus are not known here"]
    clips, total_frames = TRAINING_CLIPS[config.corpus.kind]
    frames = clips * min(total_frames / clips, config.video.max_frames)  # the cap cuts the few long clips
    rate = MEASURED_FRAMES_PER_SECOND[key] * device.count
    epoch = frames / rate
    epochs = {stage: getattr(config, stage).epochs for stage in ("reference", "scl", "translate")}
    stages = ", ".join(f"{stage} {n:g} epochs {format_duration(epoch * n)}" for stage, n in epochs.items())
    total = epoch * sum(epochs.values())
    return [
        f"{key[0]}: {MEASURED_FRAMES_PER_SECOND[key]:,.0f} frames/s measured ({key[1]}, {key[2]}, 2 clips "
        "of 112 frames, full fine-tuning; benchmarks/RESULTS.md §1)"
        + (f" × {device.count} GPUs (assuming linear scaling)" if device.count > 1 else ""),
        f"one epoch ({clips:,} clips, {frames:,.0f} frames): {format_duration(epoch)}; {stages}; "
        f"{format_duration(total)} in all",
        "training steps only (no evaluation, snapshots or loading stalls), at the configured knobs "
        "(checkpointing recomputes: about one more forward of what it covers)",
    ]


def measured_key(name: str | None, preset: str, precision: str, image_size: int) -> tuple | None:
    """The measurement for a device ``name`` (a case-insensitive part of it, e.g. ``h100``), if any."""
    if not name:
        return None
    for key in MEASURED_FRAMES_PER_SECOND:
        if name.lower() in key[0].lower() and key[1:] == (preset, precision, image_size):
            return key
    return None
