"""A Hugging Face Space for a published model: its web page, pinned requirements and Space card.

:func:`prepare_space_upload` writes, offline, exactly the folder that is uploaded (with
:func:`trainers.publishing.hub.upload_folder`, ``repo_type="space"``):

* ``app.py``: downloads the model repository (``huggingface_hub.snapshot_download``), builds its
  ``sign-language-translation`` pipeline from the repository's remote code
  (``trust_remote_code=True``) and serves the page. ``SCL_SLT_MODEL`` in the environment names
  another repository or a local model folder (to try the Space on a machine of one's own).
* ``web_page.py``: :mod:`trainers.application.web_page`, copied verbatim (it imports nothing of
  this project).
* ``requirements.txt``: every distribution the Space imports — its own files and the model's
  remote code — pinned to the version installed where the folder is prepared: the environment the
  model and the page were tested in. A local version label (``2.13.0+cpu``) is dropped.
* ``README.md``: the Space card (``sdk: gradio`` at the installed Gradio version, ``app_file``,
  the Python version, ``models`` naming the model repository) with a link to the model.

The Space needs Gradio: preparing one without it installed is refused (its version is pinned).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from .hub import make_output_folder

APP_FILE = "app.py"
PAGE_FILE = "web_page.py"
REQUIREMENTS_FILE = "requirements.txt"
CARD_FILE = "README.md"
SPACE_FILES = (APP_FILE, PAGE_FILE, REQUIREMENTS_FILE, CARD_FILE)
# The page module, found by path: the Space copies the file, the publishing code never runs it.
PAGE_SOURCE = Path(__file__).resolve().parents[1] / "application" / PAGE_FILE
# Distributions the Space imports: app.py and web_page.py (gradio, huggingface-hub, pyyaml, transformers),
# the model's remote code (torch, transformers, numpy; av for video files, pillow for frame
# folders) and what transformers needs to load its weights and tokenizer.
REQUIREMENTS = (
    "gradio",
    "huggingface-hub",
    "pyyaml",
    "transformers",
    "tokenizers",
    "safetensors",
    "sentencepiece",
    "protobuf",
    "torch",
    "numpy",
    "av",
    "pillow",
)
MODEL_ENVIRONMENT_VARIABLE = "SCL_SLT_MODEL"

APP_TEMPLATE = '''\
"""A Gradio Space that translates sign language videos with {model_repo_id}.

Set SCL_SLT_MODEL to another model repository or to a local model folder to serve that instead.
"""

import os
from pathlib import Path

from huggingface_hub import snapshot_download
from transformers import pipeline

from web_page import ModelFacts, TranslationPage

MODEL = os.environ.get("{variable}") or "{model_repo_id}"

model_dir = MODEL if Path(MODEL).is_dir() else snapshot_download(MODEL)
translator = pipeline("sign-language-translation", model=model_dir, trust_remote_code=True)
page = TranslationPage(translator, ModelFacts.from_model_folder(model_dir, translator))
# The address and port come from the Space (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT); Gradio's
# default elsewhere is 127.0.0.1:7860.
page.build().launch()
'''

CARD_TEXT = """\
# {title}

Sign language video in, text out: upload a video or record one with the webcam and read the
translation of [{model_repo_id}](https://huggingface.co/{model_repo_id}). The page shows the
model's languages, the scores published on its card and its limits.

The model runs as remote code from its repository (`trust_remote_code=True`); this Space holds
only the page. Built with scl-slt, a Hugging Face-native implementation of SCL-SLT (Selective
Contrastive Learning for gloss-free Sign Language Translation). Machine sign language
translation makes errors that change meaning: it does not replace interpreters.
"""


class SpaceError(ValueError):
    """A Space cannot be prepared in this environment (Gradio is not installed)."""


def prepare_space_upload(
    model_repo_id: str, out_dir: str | Path | None = None, *, title: str | None = None
) -> Path:
    """Write the Space folder whose page serves the model repository ``model_repo_id``; returns it.

    Args:
        model_repo_id: The model repository on the Hub (``user/name``) the Space loads.
        out_dir: Where to write (must not exist or be empty). None: a new temporary folder that
            the caller owns.
        title: The Space's title (default: the model's name, from ``model_repo_id``).

    Raises:
        SpaceError: Gradio (or another pinned distribution) is not installed here.
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    if "/" not in model_repo_id.strip("/"):
        raise ValueError(f"model repository id {model_repo_id!r} must be USER/NAME")
    pins = pinned_requirements()
    out = make_output_folder(out_dir, "scl-slt-space-")
    title = title or model_repo_id.split("/")[-1]
    (out / APP_FILE).write_text(
        APP_TEMPLATE.format(model_repo_id=model_repo_id, variable=MODEL_ENVIRONMENT_VARIABLE),
        encoding="utf-8",
    )
    (out / PAGE_FILE).write_bytes(PAGE_SOURCE.read_bytes())
    (out / REQUIREMENTS_FILE).write_text("".join(f"{name}=={pin}\n" for name, pin in pins.items()), "utf-8")
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=pins["gradio"],
        app_file=APP_FILE,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        models=[model_repo_id],
        tags=["sign-language-translation", "sign-language", "scl-slt"],
    )
    text = CARD_TEXT.format(title=title, model_repo_id=model_repo_id)
    SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{text}").save(out / CARD_FILE)
    return out


def pinned_requirements() -> dict[str, str]:
    """Each distribution of :data:`REQUIREMENTS` → its installed version (local label dropped)."""
    pins = {}
    for name in REQUIREMENTS:
        try:
            pins[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            extra = " (pip install 'scl-slt[app]')" if name == "gradio" else ""
            raise SpaceError(
                f"a Space pins the version of {name} it was tested with, and {name} is not installed "
                f"here{extra}"
            ) from None
    return pins
