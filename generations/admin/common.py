"""What every admin page shares: thumbnails, stored files, plurals, read-only records."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

NONE = "—"


class RecordAdmin(admin.ModelAdmin):
    """A record kept as written (the audit trail, deleted takes' spend): browsed and
    searched, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def media_url(name: str, uuid) -> str | None:
    # The media views belong to the studio; until they are routed the admin just shows no image.
    try:
        return reverse(name, args=[uuid])
    except NoReverseMatch:
        return None


def thumbnail_html(url: str | None, alt: str, height: int = 48):
    if url is None:
        return NONE
    return format_html('<img src="{}" alt="{}" height="{}" loading="lazy">', url, alt, height)


def stored_file_link(field_file, url: str | None):
    # FieldFile.url would fail: media has no public URL, only the checking views.
    if not field_file:
        return NONE
    if url is None:
        return field_file.name
    return format_html('<a href="{}">{}</a>', url, field_file.name)


def plural_s(count: int) -> str:
    return "" if count == 1 else "s"


def were(count: int) -> str:
    return "was" if count == 1 else "were"
