"""Generated sign language corpora, written in the manifest layout that ``load_sign_corpus`` reads.

- :mod:`.synthetic_corpus`: the built-in synthetic sign language (weather reports signed by
  coloured hand shapes), with :mod:`.language` (lexicon and grammar) and :mod:`.rendering`
  (signers and frames);
- :mod:`.gloss_rendered`: the gloss-rendered twin of any gloss annotation (PHOENIX-2014T,
  CSL-Daily or a manifest), with :mod:`.gloss_annotations` (reading them) and
  :mod:`.gloss_signs` (one rendered sign per gloss);
- :mod:`.feature_twin`: the feature-level twin of a gloss annotation, written straight as frame
  features (a ``datasets_scripts.frame_features`` corpus) with one difficulty knob.
"""

from .feature_twin import FeatureTwinParameters, make_feature_twin
from .gloss_annotations import GlossAnnotations, GlossRow, read_gloss_annotations
from .gloss_rendered import make_gloss_rendered_corpus
from .language import (
    SIGN_LEXICON,
    TEMPLATE_SLOTS,
    SignSpec,
    SyntheticSentence,
    near_duplicate,
    sample_sentence,
)
from .rendering import SyntheticSigner, make_signers, render_clip
from .synthetic_corpus import DUPLICATE_RICH, SIZE_PRESETS, check_synthetic_options, make_synthetic_corpus

__all__ = [
    "DUPLICATE_RICH",
    "SIGN_LEXICON",
    "SIZE_PRESETS",
    "TEMPLATE_SLOTS",
    "FeatureTwinParameters",
    "GlossAnnotations",
    "GlossRow",
    "SignSpec",
    "SyntheticSentence",
    "SyntheticSigner",
    "check_synthetic_options",
    "make_feature_twin",
    "make_gloss_rendered_corpus",
    "make_signers",
    "make_synthetic_corpus",
    "near_duplicate",
    "read_gloss_annotations",
    "render_clip",
    "sample_sentence",
]
