"""Publishing to the Hugging Face Hub: assemble the exact folders to upload, then upload them.

Nothing is tested against the network (there is no offline dry-run of an upload), so the work is
split in two:

* :func:`prepare_model_upload` and :func:`prepare_dataset_upload` write, offline, EXACTLY the
  folder that would be uploaded; tests load those folders as a Hub user would.
* :func:`upload_folder` is the one function that talks to the Hub (``create_repo`` +
  ``upload_folder``); it turns every Hub or network failure into a :class:`HubError`.

Decisions:

* The model folder is re-saved through ``SclSltForSignTranslation.from_pretrained(...)
  .save_pretrained(...)``: that is what guarantees the code files, ``auto_map`` and
  ``custom_pipelines`` (``model.push_to_hub`` is not used: it writes its own README).
* The model card is the run's ``README.md``; a final model folder of a recipe run without a card
  gets one from :func:`trainers.publishing.model_card.write_model_card`.
* A dataset is uploaded as the prepared parquet folder (``data/{split}.parquet``, frame bytes
  embedded by :func:`datasets_scripts.export_parquet`) rather than with ``Dataset.push_to_hub``.
  Both embed the frames; the folder can be tested offline and the upload path is the same as the
  model's. Publish a corpus only where its licence allows it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from datasets import DatasetDict
from huggingface_hub import DatasetCard, DatasetCardData
from huggingface_hub.errors import HTTPError
from transformers import AutoTokenizer

import modeling_scl_slt
from datasets_scripts import export_parquet

from ..method.damaged_files import check_model_folder_files
from .card_facts import LOCAL_PLACEHOLDER
from .model_card import CARD_FILE, write_model_card

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILE = "tokenizer_config.json"
# Every module of the model package travels with the weights (save_pretrained copies them all).
CODE_FILES = tuple(
    sorted(
        path.name
        for path in Path(modeling_scl_slt.__file__).parent.glob("*.py")
        if path.name != "__init__.py"
    )
)
UPLOAD_FILES = ("config.json", "generation_config.json", TOKENIZER_FILE, CARD_FILE, *CODE_FILES)
RUN_MARKERS = ("recipe.yaml", "metrics.json")  # a folder holding both is a recipe run directory
DATA_FOLDER = "data"


class HubError(RuntimeError):
    """An upload failed (offline, no token, no permission, network error, bad repository id)."""


# --- model ------------------------------------------------------------------------------------
def prepare_model_upload(
    model_dir: str | Path, out_dir: str | Path | None = None, *, repo_id: str | None = None
) -> Path:
    """Write the folder that would be uploaded for the model in ``model_dir``; returns it.

    The folder holds the weights (safetensors), ``config.json`` (with ``auto_map`` and
    ``custom_pipelines``), the code files a fresh ``trust_remote_code`` load needs, the tokenizer,
    ``generation_config.json`` and the model card ``README.md``.

    Args:
        model_dir: A saved model folder with its tokenizer and, unless it is the ``model/`` folder
            of a recipe run (whose card is then written), a model card ``README.md``.
        out_dir: Where to write (must not exist or be empty). None: a new temporary folder that
            the caller owns.
        repo_id: The Hub repository (``user/name``); the card's loading snippets then name it
            instead of ``path/to/model``.

    Raises:
        FileNotFoundError: naming the required file that ``model_dir`` lacks.
        DamagedFileError: naming the first file of ``model_dir`` that does not read whole.
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    model_dir = Path(model_dir)
    check_model_folder(model_dir)
    out = make_output_folder(out_dir, "scl-slt-model-")
    from modeling_scl_slt import SclSltForSignTranslation  # registers the auto classes and the task

    SclSltForSignTranslation.from_pretrained(model_dir).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    write_card(model_dir, out, repo_id)
    check_upload_folder(out)
    return out


def check_model_folder(model_dir: Path) -> None:
    """Raise a FileNotFoundError naming the first required file that ``model_dir`` lacks, or a
    DamagedFileError naming the first of its files that does not read whole."""
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    for name, holds in (("config.json", "the model config"), (TOKENIZER_FILE, "the tokenizer")):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir / name} is missing: the upload needs {holds}")
    check_model_folder_files(model_dir)
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{model_dir / WEIGHT_FILES[0]} is missing: the upload needs the weights")
    if not (model_dir / CARD_FILE).is_file() and run_directory_of(model_dir) is None:
        raise FileNotFoundError(
            f"{model_dir / CARD_FILE} is missing: the upload needs a model card, and {model_dir} is not "
            "the model/ folder of a recipe run (whose card could be written)"
        )


def run_directory_of(model_dir: Path) -> Path | None:
    """The recipe run directory whose final model ``model_dir`` is, or None."""
    run_dir = model_dir.resolve().parent
    return run_dir if all((run_dir / name).is_file() for name in RUN_MARKERS) else None


def write_card(model_dir: Path, out: Path, repo_id: str | None) -> Path:
    """Copy the card of ``model_dir`` into ``out`` (snippets naming ``repo_id``), or write the run's."""
    card = model_dir / CARD_FILE
    if not card.is_file():
        run_dir = run_directory_of(model_dir)
        if run_dir is None:
            raise FileNotFoundError(f"{card} is missing and {model_dir} is not the model/ of a recipe run")
        return write_model_card(run_dir, model_dir=out, repo_id=repo_id)
    text = card.read_text(encoding="utf-8")
    if repo_id:
        text = text.replace(LOCAL_PLACEHOLDER, repo_id)
    (out / CARD_FILE).write_text(text, encoding="utf-8")
    return out / CARD_FILE


def check_upload_folder(folder: Path) -> None:
    """Raise a FileNotFoundError naming any file a fresh remote-code load would miss."""
    missing = [name for name in UPLOAD_FILES if not (folder / name).is_file()]
    if not (folder / WEIGHT_FILES[0]).is_file() and not (folder / WEIGHT_FILES[1]).is_file():
        missing.append(WEIGHT_FILES[0])
    if missing:
        raise FileNotFoundError(f"the prepared upload folder {folder} lacks {', '.join(missing)}")


def make_output_folder(out_dir: str | Path | None, prefix: str) -> Path:
    """``out_dir`` created (it must be empty when it exists), or a new temporary folder."""
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"upload folder {out} is not empty: choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --- dataset ----------------------------------------------------------------------------------
def prepare_dataset_upload(
    corpus: DatasetDict, out_dir: str | Path, *, pretty_name: str | None = None, batch_size: int = 16
) -> Path:
    """Write ``corpus`` as a Hub dataset repository folder; returns it.

    Layout: ``data/{split}.parquet`` (frame bytes embedded, the ``datasets`` features in the
    schema) and a dataset card ``README.md`` whose ``configs`` name the files per split. The folder
    loads with ``datasets.load_dataset(str(folder))`` and, after the upload, with
    ``load_dataset("user/name")``.

    Args:
        corpus: Splits as returned by the corpus loaders.
        out_dir: Where to write (must not exist or be empty).
        pretty_name: Name shown on the dataset card.
        batch_size: Rows per parquet row group (one batch of frames is in memory at a time).

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    out = make_output_folder(out_dir, "scl-slt-dataset-")
    files = export_parquet(corpus, out / DATA_FOLDER, batch_size=batch_size)
    data = DatasetCardData(
        pretty_name=pretty_name,
        tags=["sign-language", "sign-language-translation", "video"],
        configs=[
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"{DATA_FOLDER}/{path.name}"} for split, path in files.items()
                ],
            }
        ],
    )
    counts = ", ".join(f"{split}: {len(corpus[split])}" for split in files)
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{dataset_card_text(counts)}").save(out / "README.md")
    return out


def dataset_card_text(counts: str) -> str:
    """The prose of the dataset card."""
    return (
        "# Sign language translation corpus\n\n"
        f"Exported with scl-slt ({counts} videos). Columns: `name`, `signer`, `text`, `frames` "
        "(the frames as images, bytes embedded), `num_frames`, and `gloss` / `language` where the "
        "corpus has them.\n\n"
        '```python\nfrom datasets import load_dataset\n\ncorpus = load_dataset("user/name")\n```\n\n'
        "The terms of use of the original corpus apply to this copy.\n"
    )


# --- the network ------------------------------------------------------------------------------
def upload_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str = "model",
    private: bool = False,
    token: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` as one commit; returns the repository URL.

    ``repo_type``: ``model``, ``dataset`` or ``space`` (a Gradio Space).

    The only function of the project that talks to the Hub. ``token`` None uses the login of
    ``hf auth login`` or ``HF_TOKEN``.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        HubError: offline (``HF_HUB_OFFLINE=1`` or no network), no or bad token, no permission,
            an invalid repository id, or any other Hub error, with the reason.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"upload folder {folder} does not exist")
    check_online(f"upload {folder} to {repo_id!r}")
    api = HfApi(token=token)
    try:
        # A Space is created with its SDK; the card's ``sdk`` then keeps it.
        space_sdk = "gradio" if repo_type == "space" else None
        url = api.create_repo(
            repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk
        )
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type)
    except (OSError, ValueError, HTTPError) as error:  # Hub errors are OSErrors; ids ValueErrors
        reason = " ".join(str(error).split())  # one line: Hub messages span several
        raise HubError(
            f"could not upload {folder} to the {repo_type} repository {repo_id!r}: {reason}"
        ) from None
    return str(url)


def check_online(action: str) -> None:
    """Raise a HubError saying that ``action`` cannot happen when offline mode is on.

    ``HF_HUB_OFFLINE`` counts whether it is set now or was set when huggingface_hub was imported
    (the library reads it once, at import).
    """
    from huggingface_hub import constants

    now = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    if now or constants.HF_HUB_OFFLINE:
        raise HubError(f"cannot {action}: offline mode is on (HF_HUB_OFFLINE); unset it and connect")
