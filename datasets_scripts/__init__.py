"""Sign-language corpora as `datasets.DatasetDict` objects."""

# Corpus loaders (PHOENIX-2014-T, CSL-Daily, any manifest), their errors, parquet export,
# the built-in synthetic corpus, the gloss-rendered twin of any gloss annotation, the shared
# video transform and the batch collator.
from .collator import SignTranslationCollator
from .csl_daily import load_csl_daily
from .errors import CorpusError, LoadReport, Problem, SignCorpus, UnsafePickleError
from .export import export_parquet, export_split
from .gloss_rendered import GlossRow, make_gloss_rendered_corpus, read_gloss_annotations
from .manifest import load_sign_corpus
from .phoenix import load_phoenix2014t
from .safe_pickle import SafeUnpickler, load_pickle_safely
from .synthetic import DUPLICATE_RICH, make_synthetic_corpus
from .transforms import VideoTransform, uniform_frame_indices

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
    "VideoTransform",
    "export_parquet",
    "export_split",
    "load_csl_daily",
    "load_phoenix2014t",
    "load_pickle_safely",
    "load_sign_corpus",
    "make_gloss_rendered_corpus",
    "make_synthetic_corpus",
    "read_gloss_annotations",
    "uniform_frame_indices",
]
