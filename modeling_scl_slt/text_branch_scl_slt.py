"""The contrastive text branch of SCL-SLT: projected features, video–text similarity, freezing.

This file travels to the Hub with the weights (``trust_remote_code``): it imports only
stdlib, torch, transformers and its sibling files, through ``from .x import y``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .similarity import video_text_similarity


class SclSltTextBranchMixin:
    """Text-branch methods of [`SclSltForSignTranslation`] (a plain mixin: no weights of its own).

    It reads attributes the model sets in ``__init__``: ``config``, ``video_encoder``,
    ``text_encoder``, ``video_projection``, ``text_projection`` and ``logit_scale`` (the last four
    are None without the text branch).
    """

    # --- freezing and dropping ----------------------------------------------------------------
    def _apply_text_encoder_freeze(self) -> None:
        if self.text_encoder is not None and self.config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)
            self.text_encoder.eval()

    def drop_text_branch(self) -> None:
        """Remove the text encoder, the projections and the logit scale (stage-2 checkpoints)."""
        self.text_encoder = None
        self.video_projection = None
        self.text_projection = None
        self.logit_scale = None
        self.config.use_text_branch = False

    # --- features and similarity ------------------------------------------------------------
    def get_video_features(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        frame_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projected visual tokens (B, Lv, P) and their mask (B, Lv), of ``pixel_values``
        (B, T, 3, H, W) or ``frame_features`` (B, T, C) (exactly one) with the frame mask (B, T)."""
        encoded = self.video_encoder(pixel_values, attention_mask, frame_features=frame_features)
        return self.project_video_tokens(encoded.last_hidden_state), encoded.attention_mask

    def project_video_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, Lv, d_model) encoder states → (B, Lv, P) normalised projections."""
        self._require_text_branch()
        return F.normalize(self.video_projection(hidden), dim=-1)

    def get_text_features(
        self, text_input_ids: torch.Tensor, text_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projected text tokens (B, Lt, P) and their mask (B, Lt)."""
        self._require_text_branch()
        if text_attention_mask is None:
            text_attention_mask = (text_input_ids != self.config.pad_token_id).long()
        frozen = not any(p.requires_grad for p in self.text_encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            hidden = self.text_encoder(
                input_ids=text_input_ids, attention_mask=text_attention_mask
            ).last_hidden_state
        return F.normalize(self.text_projection(hidden), dim=-1), text_attention_mask

    def similarity(
        self,
        video_embeds: torch.Tensor,
        video_mask: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        aggregation: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled video→text (Nv, Nt) and text→video (Nt, Nv) similarity of projected tokens.

        ``aggregation`` defaults to ``config.similarity_aggregation`` (``cico``, ``cls`` or ``mean``).
        """
        return video_text_similarity(
            video_embeds,
            video_mask,
            text_embeds,
            text_mask,
            aggregation=aggregation or self.config.similarity_aggregation,
            temperature=self.config.similarity_temperature,
        )

    def _require_text_branch(self) -> None:
        if self.text_encoder is None:
            raise ValueError("this model has no text branch (config.use_text_branch=False)")

    def _contrastive_outputs(
        self,
        encoder_states: torch.Tensor,
        encoder_mask: torch.Tensor,
        text_input_ids: torch.Tensor,
        text_attention_mask: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The text-branch fields of :class:`SclSltOutput`."""
        video_embeds = self.project_video_tokens(encoder_states)
        text_embeds, text_mask = self.get_text_features(text_input_ids, text_attention_mask)
        similarity_per_video, similarity_per_text = self.similarity(
            video_embeds, encoder_mask, text_embeds, text_mask
        )
        return {
            "video_embeds": video_embeds,
            "text_embeds": text_embeds,
            "text_attention_mask": text_mask,
            "similarity_per_video": similarity_per_video,
            "similarity_per_text": similarity_per_text,
            "logit_scale": self.logit_scale(),
        }
