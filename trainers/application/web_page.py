"""The web page of a translation model: upload or record a sign language video, read the translation.

Built with Gradio, the Hub's convention for Spaces (the optional extra ``app``). One file serves both
``scl-slt app MODEL_DIR`` and, copied verbatim next to the Space's ``app.py``, a Hugging Face Space
(:mod:`trainers.publishing.space`). It therefore imports only the standard library, ``gradio``,
``huggingface_hub`` and ``yaml`` — nothing of this project — and receives the ``sign-language-translation``
pipeline ready-made: the command builds it from the installed package, a Space from the model
repository's remote code.

Rules of the page:

* The video comes from an upload or from the webcam (recorded in the browser, sent as a file). A
  recording is not mirrored: the model sees the signer as a camera facing them does, as in the
  corpora.
* Every video is translated in windows as long as the model reads at once (``chunk_length_s``
  of the pipeline: ``max_frames`` frames at the model's frame rate, cut where the signing pauses).
  A video of one window gives its translation; a longer one gives one line per window,
  ``mm:ss.s–mm:ss.s  text``, from the pipeline's timestamps.
* A video the pipeline refuses (unreadable, empty, too few frames, no video stream) shows the
  pipeline's one-line message in the error field, never a traceback; the server's temporary
  path in it is replaced by the uploaded file's name.
* One translation runs at a time (Gradio's queue): a second visitor waits, memory stays that of
  one video.
* The facts shown come from the model folder's card (``README.md``: its metadata's name,
  languages and model-index scores, and its "Intended use and limitations" section) and from the
  pipeline (the shortest clip it accepts, the longest window and the frame rate it reads at).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import yaml
from huggingface_hub import ModelCard

CARD_FILE = "README.md"
LIMITS_HEADING = "Intended use and limitations"
DEFAULT_HOST = "127.0.0.1"  # this machine only; a page for others must be asked for (--host 0.0.0.0)
# The headline metrics, by the label that starts a model-index ``metric_name`` ("BLEU-4 (sacrebleu
# …)"), as scl-slt's cards write them; a card with none of them shows all its metrics.
SHOWN_METRICS = ("BLEU-4", "ROUGE-L")
NO_VIDEO = "Upload a video or record one with the webcam first."
# Uploaded and recorded videos are deleted an hour after they arrive (checked every hour): a page
# that runs for weeks does not fill the disk.
UPLOAD_LIFETIME_S = (3600, 3600)


@dataclass
class ModelFacts:
    """What the page says about the model.

    Attributes:
        name: The model's name (card metadata ``model_name``, else the folder's name).
        languages: The card's ``language`` codes (spoken target language first), possibly empty.
        scores: ``(split, metric, value)`` rows of the card's model-index (its BLEU-4 and ROUGE-L
            where it has them), values as published (scl-slt's cards: ×100).
        limits: The card's "Intended use and limitations" section (Markdown), or "" without one.
        min_frames: The shortest clip (and window) the pipeline accepts, in frames.
        max_frames: The longest window the model reads at once, in frames.
        frame_rate: Frames per second every video is resampled to before the model reads it.
        has_card: Whether the folder holds a model card at all.
    """

    name: str
    min_frames: int
    max_frames: int
    frame_rate: float
    languages: list[str] = field(default_factory=list)
    scores: list[tuple[str, str, float]] = field(default_factory=list)
    limits: str = ""
    has_card: bool = False

    @property
    def window_seconds(self) -> float:
        """The longest window in seconds: ``max_frames / frame_rate``."""
        return self.max_frames / self.frame_rate

    @classmethod
    def from_model_folder(cls, folder: str | Path, translator: Any) -> ModelFacts:
        """The facts of the model saved in ``folder`` served by ``translator`` (its pipeline).

        The card is read as text and YAML (``huggingface_hub.ModelCard``): nothing in it runs.
        """
        folder = Path(folder)
        facts = cls(
            name=folder.resolve().name,
            min_frames=int(translator.min_frames),
            max_frames=int(translator.max_frames),
            frame_rate=float(translator.frame_rate),
        )
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            return facts
        try:
            facts.read_card(ModelCard.load(card_path))
        except (ValueError, TypeError, yaml.YAMLError) as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"model card {card_path} cannot be read: {reason}") from None
        return facts

    def read_card(self, card: ModelCard) -> None:
        """Take name, languages, scores and limits from ``card``."""
        data = card.data
        self.has_card = True
        self.name = data.model_name or self.name
        languages = data.language or []
        self.languages = [languages] if isinstance(languages, str) else list(languages)
        scores = [
            (result.dataset_split or "", metric_label(result), float(result.metric_value))
            for result in data.eval_results or []
        ]
        headline = [row for row in scores if row[1] in SHOWN_METRICS]
        self.scores = headline or scores
        self.limits = markdown_section(card.text, LIMITS_HEADING)

    def summary_markdown(self) -> str:
        """Name, languages and scores: the Markdown above the video."""
        languages = ", ".join(f"`{code}`" for code in self.languages) or "not stated"
        lines = [f"## {self.name}", "", f"Sign language video in, text out. **Languages:** {languages}", ""]
        if not self.scores:
            reason = "its card publishes none" if self.has_card else "the folder has no model card"
            return "\n".join([*lines, f"**Scores:** none shown ({reason})."])
        metrics = list(dict.fromkeys(metric for _, metric, _ in self.scores))
        splits = list(dict.fromkeys(split for split, _, _ in self.scores))
        table = {(split, metric): value for split, metric, value in self.scores}
        lines += ["| scores on its card | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for split in splits:
            cells = [f"{table[split, metric]:.2f}" if (split, metric) in table else "" for metric in metrics]
            lines.append(f"| {split} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def limits_markdown(self) -> str:
        """The input rules of the pipeline, then the card's limitations: the Markdown below."""
        rate, window = f"{self.frame_rate:g}", f"{self.window_seconds:.2f}".rstrip("0").rstrip(".")
        lines = [
            "### Limits",
            "",
            f"- **Input:** a video is read at {rate} frames per second and needs at least "
            f"{self.min_frames} frames. The model reads at most {self.max_frames} frames ({window} s) "
            f"at once: a longer video is translated in windows of up to {window} s, cut where the "
            "signing pauses, one line each with its time span. Each window is translated on its "
            "own, as the sentence-level clips the model was trained on.",
        ]
        return "\n".join([*lines, self.limits] if self.limits else lines)


def metric_label(result: Any) -> str:
    """The short name of a model-index result: its ``metric_name`` up to a parenthesis, else its
    ``metric_type``."""
    return (result.metric_name or result.metric_type).split(" (")[0].strip()


def markdown_section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown ``text`` (up to the next heading of
    level 1 or 2), stripped; "" when there is no such section."""
    match = re.search(rf"^##\s+{re.escape(heading)}\s*$(.*?)(?=^#{{1,2}}\s|\Z)", text, re.M | re.S)
    return match.group(1).strip() if match else ""


def format_seconds(seconds: float) -> str:
    """``75.25`` → ``01:15.2`` (minutes, seconds to a tenth)."""
    minutes, rest = divmod(max(float(seconds), 0.0), 60.0)
    return f"{int(minutes):02d}:{rest:04.1f}"


def format_translation(result: Any) -> str:
    """The text of a pipeline result: one window's text, or one line per window with its time span.

    ``result`` is the pipeline's answer for one video: a list of dicts with ``translation_text``,
    each with a ``timestamp`` ``(start, end)`` in seconds when the video was read in windows.
    """
    rows = result if isinstance(result, list) else [result]
    if len(rows) == 1:  # one window: its span is the whole video
        return str(rows[0]["translation_text"])
    lines = []
    for row in rows:
        start, end = row["timestamp"]
        lines.append(f"{format_seconds(start)}–{format_seconds(end)}  {row['translation_text']}")
    return "\n".join(lines)


def one_line(message: str, path: str | None = None) -> str:
    """``message`` on one line, the temporary ``path`` of an upload replaced by its file name."""
    if path:
        message = message.replace(path, Path(path).name)
    return " ".join(message.split())


class TranslationPage:
    """The Gradio page around one translation pipeline.

    Args:
        translator: A ``sign-language-translation`` pipeline; called as ``translator(path,
            chunk_length_s=facts.window_seconds, return_timestamps=True, **generate_kwargs)``.
        facts: What the page says about the model.
        generate_kwargs: Generation arguments of every call (default: the model's generation config).
    """

    def __init__(self, translator: Any, facts: ModelFacts, **generate_kwargs: Any) -> None:
        self.translator = translator
        self.facts = facts
        self.generate_kwargs = generate_kwargs

    def translate(self, video: str | None) -> tuple[str, Any]:
        """Translate the video file at ``video`` → (translation text, update of the error field).

        A ``ValueError`` of the pipeline (a bad or too-short file) becomes the error field's one
        line; the error field is hidden again after a translation.
        """
        if not video:
            return "", gr.Textbox(value=NO_VIDEO, visible=True)
        try:
            result = self.translator(
                video,
                chunk_length_s=self.facts.window_seconds,
                return_timestamps=True,
                **self.generate_kwargs,
            )
        except ValueError as error:
            return "", gr.Textbox(value=one_line(str(error), video), visible=True)
        return format_translation(result), gr.Textbox(value="", visible=False)

    def build(self) -> gr.Blocks:
        """The page: model facts, the video input (upload or webcam), a button, the translation."""
        with gr.Blocks(
            title=f"{self.facts.name} · sign language translation",
            analytics_enabled=False,  # no usage reports leave the machine
            delete_cache=UPLOAD_LIFETIME_S,
        ) as page:
            gr.Markdown(self.facts.summary_markdown(), elem_id="model-facts")
            with gr.Row():
                with gr.Column():
                    video = gr.Video(
                        sources=["upload", "webcam"],
                        label="Sign language video (upload a file or record with the webcam)",
                        # Kept as recorded: the model reads the frames only, and dropping the sound
                        # would make Gradio run the ffmpeg program, which a machine may lack.
                        include_audio=True,
                        elem_id="video",
                    )
                    button = gr.Button("Translate", variant="primary", elem_id="translate")
                with gr.Column():
                    translation = gr.Textbox(
                        label="Translation", interactive=False, lines=4, elem_id="translation"
                    )
                    error = gr.Textbox(label="Error", interactive=False, visible=False, elem_id="error")
            gr.Markdown(self.facts.limits_markdown(), elem_id="model-limits")
            button.click(self.translate, inputs=video, outputs=[translation, error], api_name="translate")
        return page

    def launch(self, host: str = DEFAULT_HOST, port: int | None = None, **launch_kwargs: Any) -> None:
        """Serve the page on ``host:port`` (blocks until the server stops). ``port`` None: Gradio's
        choice (``GRADIO_SERVER_PORT``, else the first free port from 7860)."""
        self.build().launch(server_name=host, server_port=port, **launch_kwargs)
