"""Jinja templates of the model cards that recipe runs write next to their models.

The templates ship as package data (``pyproject.toml``: ``[tool.setuptools.package-data]``), so
they load the same way from a source checkout, an editable install or a wheel. They are rendered
by :func:`trainers.publishing.model_card.build_model_card` through
``huggingface_hub.ModelCard.from_template``.
"""

from __future__ import annotations

from importlib import resources

TRANSLATION_TEMPLATE = "scl_slt_translation.md"


def read_template(name: str = TRANSLATION_TEMPLATE) -> str:
    """The text of the template ``name`` (a file of this package)."""
    template = resources.files(__name__).joinpath(name)
    if not template.is_file():
        raise FileNotFoundError(f"model card template {name!r} is not a file of the {__name__} package")
    return template.read_text(encoding="utf-8")


__all__ = ["TRANSLATION_TEMPLATE", "read_template"]
