"""Small template helpers for the studio pages."""

from __future__ import annotations

from datetime import timedelta

from django import template

from ..engines.catalogue import get_model

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A short human duration: "45 s", "3 min 05 s", "1 h 12 min"."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def aspect_class(aspect: str) -> str:
    """The CSS modifier that gives a clip box its own shape (16:9 or 9:16)."""
    return "portrait" if aspect == "portrait" else "landscape"


@register.filter
def model_label(key: str) -> str:
    """The catalogue's name for a model key (the key itself when it is no longer offered)."""
    model = get_model(key)
    return model.label if model else key
