"""Small template helpers for the studio pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from .. import budgets
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
def amount(value, unit: str) -> str:
    """A sum in its unit, as budgets.amount words it: "$0.90", "20 credits"."""
    return budgets.amount(value or 0, unit)


@register.filter
def limit_input(value, unit: str) -> str:
    """A budget or an allowance as the Spend page's form shows and carries it back (the
    ``was`` the owner saw): "7.50" in dollars, "500" in credits (the column keeps cents for
    both), "" for none."""
    if value is None:
        return ""
    value = Decimal(value)
    if unit == "USD" or value != value.to_integral_value():
        return f"{value:.2f}"
    return str(int(value))


@register.filter
def aspect_class(aspect: str) -> str:
    """The CSS modifier that gives a clip box its own shape (16:9 or 9:16)."""
    return "portrait" if aspect == "portrait" else "landscape"


@register.filter
def model_label(key: str) -> str:
    """The catalogue's name for a model key (the key itself when it is no longer offered)."""
    model = get_model(key)
    return model.label if model else key


@register.filter
def moment(value: datetime | None) -> str:
    """A <time> element for an aware datetime in the site's time zone: "30 Nov 2026, 14:05".

    A gallery page shows one per card, so this is cheaper than two ``date`` filters (which look
    every format up through the translations) or ``format_html``.
    """
    if value is None:
        return ""
    local = timezone.localtime(value)
    # Only digits, signs and an English month abbreviation (strftime in the C locale, which
    # Django never changes): nothing to escape.
    return mark_safe(
        f'<time datetime="{local.isoformat()}">{local.day} {local:%b %Y, %H:%M}</time>'
    )


@register.filter
def ago(value: datetime | None) -> str:
    """How long ago, in words: "just now" under a minute (never "0 minutes ago")."""
    if value is None:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


# A reason ending in Flow's own code, as the engine writes it: "… refused it (PUBLIC_ERROR_X)."
_TRAILING_CODE = re.compile(r"^(?P<text>.*?)\s*\((?P<code>[A-Z][A-Z0-9_]{3,})\)\.?$", re.S)


@register.filter
def reason_parts(reason: str) -> dict:
    """A take's reason split into the sentence for people and Flow's code for support, so a
    card shows the sentence and keeps the long unbreakable code on a small line of its own."""
    match = _TRAILING_CODE.match(reason or "")
    if not match:
        return {"text": reason, "code": ""}
    return {"text": f"{match['text'].rstrip('.')}.", "code": match["code"]}


@register.simple_tag
def worker_stall() -> str:
    """Why nothing moves, in words, while the worker has stopped (the admin index shows it)."""
    from .. import heartbeat

    found = heartbeat.current_stall()
    return str(found) if found else ""
