"""Check an uploaded peft adapter against a base model before anything is stored.

Pure Python (no Django), so it can be used and tested on its own. peft is imported
lazily by :func:`validate_adapter`; importing this package does not pull in torch.
"""

from hub.validation.adapter import ValidatedAdapter, validate_adapter
from hub.validation.files import UploadLimits
from hub.validation.finite import check_finite
from hub.validation.safetensors_header import TensorInfo, read_safetensors_header

__all__ = [
    "TensorInfo",
    "UploadLimits",
    "ValidatedAdapter",
    "check_finite",
    "read_safetensors_header",
    "validate_adapter",
]
