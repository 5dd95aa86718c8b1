"""Where the evaluator runs its models: the one place device and dtype are decided.

``PEFTHUB_EVAL_DEVICE`` is ``auto`` (CUDA when torch sees one, else CPU) or an explicit
torch device (``cuda``, ``cuda:1``, ``cpu``); ``PEFTHUB_EVAL_DTYPE`` is ``auto``
(bfloat16 on CUDA, float32 on CPU) or a torch dtype name. Every backend, the shared pass
and lm-eval's ``simple_evaluate`` take both from :func:`placement`, so no code path
picks a device of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def resolve_device(value: str = AUTO) -> str:
    value = (value or AUTO).strip().lower()
    if value != AUTO:
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(value: str, *, device: str) -> str:
    value = (value or AUTO).strip().lower()
    if value == AUTO:
        return "bfloat16" if device.startswith("cuda") else "float32"
    if value not in DTYPES:
        raise ValueError(f"PEFTHUB_EVAL_DTYPE `{value}` is not known; use auto or one of {', '.join(DTYPES)}")
    return value


def placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """The resolved device and dtype: the arguments if given, else the worker's settings."""
    if device is None or dtype is None:
        from django.conf import settings

        device = device if device is not None else getattr(settings, "PEFTHUB_EVAL_DEVICE", AUTO)
        dtype = dtype if dtype is not None else getattr(settings, "PEFTHUB_EVAL_DTYPE", AUTO)
    resolved = resolve_device(device)
    return Placement(device=resolved, dtype=resolve_dtype(dtype, device=resolved))
