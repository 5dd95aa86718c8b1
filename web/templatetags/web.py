"""Small formatting filters for the pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.filter
def get(mapping: Any, key: str) -> Any:
    """``row|get:"acme_qa:answer_match"``: dict lookup for keys templates cannot spell."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def pct(value: Any, signed: str = "") -> str:
    """0.4712 -> ``47.1%``; with ``signed``, a difference in points: ``+12.0 pts``."""
    if value is None or value == "":
        return "—"
    number = float(value) * 100
    return f"{number:+.1f} pts" if signed else f"{number:.1f}%"


@register.filter
def stderr(value: Any) -> str:
    return "" if value is None else f"± {float(value) * 100:.1f}"


@register.filter
def cell(value: Any, column: str) -> str:
    """A leaderboard cell, formatted by its column."""
    if value is None or value == "":
        return "—"
    if column == "size_bytes":
        return filesizeformat(value)
    if column in ("gain_over_base", "gain_over_rag", "forgetting"):
        return pct(value, "signed")
    if column in ("average", "adapter_rag", "base", "base_rag") or ":" in column:
        return pct(value)
    if column == "training_time_seconds":
        return f"{float(value) / 60:.1f} min"
    if column in ("trainable_params", "num_training_examples"):
        return f"{int(value):,}"
    return str(value)
