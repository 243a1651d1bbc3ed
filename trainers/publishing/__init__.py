"""Publishing: model cards (``trainers.publishing.model_card``) and Hub uploads (``.hub``)."""
