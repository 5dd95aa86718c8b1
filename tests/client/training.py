"""A few real training steps of a LoRA with transformers' Trainer, on CPU."""

from __future__ import annotations

from pathlib import Path


class TokenDataset:
    """``n`` random token sequences, labels = inputs (causal LM)."""

    def __init__(self, n: int, vocab_size: int, seq_len: int = 16, seed: int = 0) -> None:
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.rows = torch.randint(3, vocab_size, (n, seq_len), generator=generator)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        import torch

        ids = self.rows[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def lora_model(base_dir: Path, seed: int = 0):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(base, config)


def make_trainer(model, dataset, output_dir: Path, *, max_steps: int, callbacks=(), **overrides):
    from transformers import Trainer, TrainingArguments

    args = dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    args.update(overrides)
    return Trainer(model=model, args=TrainingArguments(**args), train_dataset=dataset, callbacks=list(callbacks))


def train_and_save(base_dir: Path, out: Path, *, steps: int = 3, examples: int = 6) -> Path:
    """Train a LoRA for ``steps`` steps and write it with save_pretrained into ``out``."""
    model = lora_model(base_dir)
    vocab = model.config.vocab_size
    trainer = make_trainer(model, TokenDataset(examples, vocab), out / "trainer", max_steps=steps)
    trainer.train()
    model.save_pretrained(out / "adapter")
    return out / "adapter"
