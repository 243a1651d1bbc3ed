"""Sign-language corpora as `datasets.DatasetDict` objects."""
