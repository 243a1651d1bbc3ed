"""Sign-language corpora as `datasets.DatasetDict` objects."""

# Corpus loaders (PHOENIX-2014-T, CSL-Daily, any manifest), the corpus type and its problems,
# parquet export, the batch collator, and the generated corpora (the built-in synthetic corpus,
# the gloss-rendered twin of any gloss annotation). The video transform lives with the model
# (modeling_scl_slt.VideoTransform): the pipeline on the Hub needs it too.
from .collator import SignTranslationCollator
from .corpus import CorpusError, LoadReport, Problem, SignCorpus, UnsafePickleError
from .csl_daily import load_csl_daily
from .export import export_parquet, export_split
from .manifest import load_sign_corpus
from .phoenix import load_phoenix2014t
from .safe_pickle import SafeUnpickler, load_pickle_safely
from .synthetic import (
    DUPLICATE_RICH,
    GlossRow,
    make_gloss_rendered_corpus,
    make_synthetic_corpus,
    read_gloss_annotations,
)

__all__ = [
    "DUPLICATE_RICH",
    "CorpusError",
    "GlossRow",
    "LoadReport",
    "Problem",
    "SafeUnpickler",
    "SignCorpus",
    "SignTranslationCollator",
    "UnsafePickleError",
    "export_parquet",
    "export_split",
    "load_csl_daily",
    "load_phoenix2014t",
    "load_pickle_safely",
    "load_sign_corpus",
    "make_gloss_rendered_corpus",
    "make_synthetic_corpus",
    "read_gloss_annotations",
]
