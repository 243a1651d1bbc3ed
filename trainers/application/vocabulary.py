"""Trim a pretrained (mBART-50) vocabulary to the pieces one corpus uses.

mBART-50 has 250,054 tokens; a sign-language corpus uses a few thousand. The token table and the
tied LM head hold most of the decoder's parameters and the softmax over them dominates decoding, so
:func:`trim_vocabulary` keeps only:

* every piece that the tokenizer produces for the corpus ``texts`` (with its special tokens),
* the named special tokens (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``, ...),
* the tokens that the tokenizer's post-processor inserts (e.g. its language code),
* every token id the model's configs and generation config name (pad, bos, eos, decoder start =
  the target-language code, forced bos/eos),
* ``config.tgt_lang`` and the tokens given in ``keep_tokens`` (other language codes are dropped).

New ids keep the old order (new id = rank of the old id among the kept ones).

**Why corpus tokenisation is unchanged (Unigram / sentencepiece).** The Unigram model picks the
segmentation with the highest total piece score (Viterbi). Trimming keeps every piece of the chosen
segmentations, with the same scores, so each chosen segmentation is still possible and no new
candidate appears: it is still a best one. Ties are broken the same way too: the Viterbi pass keeps
the first best candidate at each position, and removing candidates does not reorder the others. One
score would change: a character without any piece becomes ``<unk>`` with score ``min_score - 10``,
where ``min_score`` is the lowest score in the vocabulary, and a trimmed vocabulary has a higher
minimum. The ``<unk>`` entry therefore gets the original minimum as its score, which keeps
``min_score`` (and every unknown-character score) exactly as before. The ``<unk>`` entry's own
score plays no other part: the literal text ``<unk>`` is split off as a special token before the
model runs. :func:`trim_vocabulary` still re-tokenises every text and raises if anything differs.
WordLevel tokenizers (whole words, ``trainers.application.tokenization``) trim trivially. Texts outside the
corpus may be tokenised differently (pieces they need may be gone): trim on every text the model
will read or write (all splits' targets).

The result is a generic ``PreTrainedTokenizerFast`` (the post-processor of the original at the
time of trimming is kept as is; mBART-50's per-call language switching is not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerFast

# Config fields that hold token ids (an int or a list of ints).
TOKEN_ID_FIELDS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
)
# Attributes of a tokenizer that name one special token each (all kept when set).
NAMED_SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "mask_token",
    "sep_token",
    "cls_token",
)


@dataclass
class TrimmedVocabulary:
    """Result of :func:`trim_vocabulary`.

    Args:
        model: The same model object, its token tables sliced in place.
        tokenizer: A new tokenizer over the kept tokens.
        kept_ids (`torch.LongTensor` of shape `(new_vocab_size,)`): Old id of every new id, ascending.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    kept_ids: torch.Tensor


def trim_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Iterable[str],
    keep_tokens: Sequence[str] = (),
) -> TrimmedVocabulary:
    """Keep only the tokens that ``texts`` use (plus the special ones) in ``tokenizer`` and ``model``.

    ``model`` is an ``SclSltForSignTranslation`` (or any model with ``decoder.embed_tokens``,
    ``lm_head`` and an optional ``text_encoder.embed_tokens``), modified in place. The logits of a
    kept token are the old ones at the new position: ``new_logits[..., i] == old_logits[...,
    kept_ids[i]]``. See the module docstring for what is kept and why tokenisation is unchanged.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("trim_vocabulary needs the corpus texts; got none")
    old_encodings = [encoding.ids for encoding in tokenizer.backend_tokenizer.encode_batch(texts)]
    kept = kept_token_ids(model, tokenizer, old_encodings, keep_tokens)
    new_tokenizer = trimmed_tokenizer(tokenizer, kept)
    _check_same_tokenisation(texts, old_encodings, new_tokenizer, kept)
    trim_model_vocabulary(model, kept)
    return TrimmedVocabulary(model=model, tokenizer=new_tokenizer, kept_ids=torch.tensor(kept))


def kept_token_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    encodings: Iterable[Sequence[int]],
    keep_tokens: Sequence[str] = (),
) -> list[int]:
    """Sorted old ids to keep: the ids of ``encodings`` and every special/required token."""
    kept = {token_id for ids in encodings for token_id in ids}
    kept |= set(_config_token_ids(model))
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    names = [*_named_special_tokens(tokenizer).values(), *_post_processor_tokens(state["post_processor"])]
    tgt_lang = getattr(model.config, "tgt_lang", None)
    names += [*([tgt_lang] if tgt_lang else []), *keep_tokens]
    for name in names:
        token_id = tokenizer.backend_tokenizer.token_to_id(name)
        if token_id is None:
            raise ValueError(
                f"token {name!r} is not in the tokenizer's vocabulary; every token to keep (special "
                "tokens, config.tgt_lang, keep_tokens) must be one of its tokens"
            )
        kept.add(token_id)
    vocab_size = model.get_input_embeddings().num_embeddings
    too_large = sorted(token_id for token_id in kept if token_id >= vocab_size)
    if too_large:
        raise ValueError(f"token ids {too_large[:5]} are beyond the model's vocabulary of {vocab_size}")
    return sorted(kept)


def trimmed_tokenizer(tokenizer: PreTrainedTokenizerFast, kept_ids: Sequence[int]) -> PreTrainedTokenizerFast:
    """A tokenizer holding only ``kept_ids`` (sorted old ids); new id = position in ``kept_ids``."""
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state["model"] = _trimmed_model_state(state["model"], old_to_new)
    state["added_tokens"] = [
        {**entry, "id": old_to_new[entry["id"]]}
        for entry in state["added_tokens"]
        if entry["id"] in old_to_new
    ]
    state["post_processor"] = _remap_post_processor(state["post_processor"], old_to_new)
    backend = Tokenizer.from_str(json.dumps(state))
    _check_ids(tokenizer, backend, old_to_new)
    kept_tokens = {tokenizer.backend_tokenizer.id_to_token(old) for old in kept_ids}
    named = {name: token for name, token in _named_special_tokens(tokenizer).items() if token in kept_tokens}
    extra = [token for token in _extra_special_tokens(tokenizer) if token in kept_tokens]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        extra_special_tokens=extra,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        **named,
    )


def trim_model_vocabulary(model: PreTrainedModel, kept_ids: Sequence[int]) -> None:
    """Slice the token tables of ``model`` to ``kept_ids`` (old ids, sorted) and remap config ids.

    ``decoder.embed_tokens`` (V, d) → (V', d); ``lm_head`` stays tied to it (or is sliced alike
    when untied); ``text_encoder.embed_tokens`` is sliced when the model has a text branch.
    """
    index = torch.tensor(kept_ids, dtype=torch.long)
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    embeddings = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embeddings.weight
    pad_id = old_to_new.get(embeddings.padding_idx) if embeddings.padding_idx is not None else None
    _slice_embedding(embeddings, index, pad_id)
    if head is not None:
        _slice_linear_rows(head, index, shared_weight=embeddings.weight if tied else None)
    text_encoder = getattr(model, "text_encoder", None)
    if text_encoder is not None and text_encoder.embed_tokens is not None:
        _slice_embedding(text_encoder.embed_tokens, index, pad_id)
    _remap_config_ids(model, old_to_new)
    model.config.get_text_config().vocab_size = len(kept_ids)


# --- tokenizer internals ----------------------------------------------------------------------
def _trimmed_model_state(state: dict[str, Any], old_to_new: dict[int, int]) -> dict[str, Any]:
    """The tokenizer model's JSON state over the kept ids (Unigram or WordLevel)."""
    kind = state["type"]
    if kind == "Unigram":
        vocab = state["vocab"]
        min_score = min(score for _, score in vocab)
        kept = [list(vocab[old]) for old in sorted(old_to_new) if old < len(vocab)]
        unk_id = state["unk_id"]
        if unk_id is not None:
            unk_id = old_to_new[unk_id]
            # Keep the vocabulary's minimum score: unknown characters score `min_score - 10`.
            kept[unk_id][1] = min(kept[unk_id][1], min_score)
        return {**state, "vocab": kept, "unk_id": unk_id}
    if kind == "WordLevel":
        vocab = {token: old_to_new[old] for token, old in state["vocab"].items() if old in old_to_new}
        return {**state, "vocab": vocab}
    raise ValueError(
        f"vocabulary trimming supports Unigram (sentencepiece) and WordLevel tokenizers, got {kind}: "
        "removing BPE pieces would break the merges that build the kept ones"
    )


def _remap_post_processor(state: Any, old_to_new: dict[int, int]) -> Any:
    """Rewrite token ids in a post-processor's JSON state (TemplateProcessing, Roberta/Bert, Sequence)."""
    if isinstance(state, list):
        return [_remap_post_processor(item, old_to_new) for item in state]
    if not isinstance(state, dict):
        return state
    remapped = {key: _remap_post_processor(value, old_to_new) for key, value in state.items()}
    if "ids" in state and "tokens" in state:  # a TemplateProcessing special token
        remapped["ids"] = [old_to_new[token_id] for token_id in state["ids"]]
    for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing: [token, id]
        if isinstance(state.get(key), list) and len(state[key]) == 2:
            remapped[key] = [state[key][0], old_to_new[state[key][1]]]
    return remapped


def _post_processor_tokens(state: Any) -> list[str]:
    """Tokens that a post-processor inserts (they must be kept)."""
    if isinstance(state, list):
        return [token for item in state for token in _post_processor_tokens(item)]
    if not isinstance(state, dict):
        return []
    tokens = list(state["tokens"]) if "ids" in state and "tokens" in state else []
    tokens += [state[key][0] for key in ("sep", "cls") if isinstance(state.get(key), list)]
    return tokens + [token for value in state.values() for token in _post_processor_tokens(value)]


def _named_special_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, str]:
    tokens = {name: getattr(tokenizer, name, None) for name in NAMED_SPECIAL_TOKENS}
    return {name: str(token) for name, token in tokens.items() if token is not None}


def _extra_special_tokens(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    extra = getattr(tokenizer, "extra_special_tokens", None) or []
    return [str(token) for token in extra]


def _check_ids(old: PreTrainedTokenizerFast, new: Tokenizer, old_to_new: dict[int, int]) -> None:
    for old_id, new_id in old_to_new.items():
        token = old.backend_tokenizer.id_to_token(old_id)
        if new.token_to_id(token) != new_id:
            raise RuntimeError(
                f"token {token!r} got id {new.token_to_id(token)} in the trimmed tokenizer, expected {new_id}"
            )


def _check_same_tokenisation(
    texts: list[str],
    old_encodings: list[list[int]],
    new_tokenizer: PreTrainedTokenizerFast,
    kept_ids: Sequence[int],
) -> None:
    """Raise if any corpus text is tokenised differently by the trimmed tokenizer."""
    new_encodings = new_tokenizer.backend_tokenizer.encode_batch(texts)
    for text, old_ids, encoding in zip(texts, old_encodings, new_encodings, strict=True):
        if [kept_ids[token_id] for token_id in encoding.ids] != old_ids:
            raise RuntimeError(f"the trimmed tokenizer segments {text!r} differently from the original")


# --- model internals ---------------------------------------------------------------------------
def _slice_embedding(embedding: nn.Embedding, index: torch.Tensor, pad_id: int | None) -> None:
    """Keep rows ``index`` of an embedding in place (its class, e.g. a scaled embedding, stays)."""
    weight = embedding.weight
    embedding.weight = nn.Parameter(weight.detach()[index.to(weight.device)].clone(), weight.requires_grad)
    embedding.num_embeddings = len(index)
    embedding.padding_idx = pad_id


def _slice_linear_rows(linear: nn.Linear, index: torch.Tensor, shared_weight: nn.Parameter | None) -> None:
    """Keep output rows ``index`` of a linear layer (or share ``shared_weight``, already sliced)."""
    weight = linear.weight
    if shared_weight is not None:
        linear.weight = shared_weight
    else:
        linear.weight = nn.Parameter(weight.detach()[index.to(weight.device)].clone(), weight.requires_grad)
    if linear.bias is not None:
        bias = linear.bias
        linear.bias = nn.Parameter(bias.detach()[index.to(bias.device)].clone(), bias.requires_grad)
    linear.out_features = len(index)


def _config_token_ids(model: PreTrainedModel) -> list[int]:
    """Every token id named by the model's configs and generation config."""
    ids = []
    for config in _configs_with_token_ids(model):
        for field in TOKEN_ID_FIELDS:
            value = getattr(config, field, None)
            ids += [value] if isinstance(value, int) else list(value or [])
    return ids


def _remap_config_ids(model: PreTrainedModel, old_to_new: dict[int, int]) -> None:
    for config in _configs_with_token_ids(model):
        for field in TOKEN_ID_FIELDS:
            value = getattr(config, field, None)
            if isinstance(value, int):
                setattr(config, field, old_to_new[value])
            elif value:
                setattr(config, field, [old_to_new[token_id] for token_id in value])


def _configs_with_token_ids(model: PreTrainedModel) -> list[Any]:
    configs = [model.config, model.config.get_text_config()]
    if getattr(model, "generation_config", None) is not None:
        configs.append(model.generation_config)
    return configs
