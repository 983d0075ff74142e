"""Flow credentials encrypted at rest.

Bearer tokens and labs session cookies spend a team's credits, so the database never holds them
in the clear: they are Fernet tokens under the keys in ``FLOWSITE_FERNET_KEYS`` (comma-separated,
newest first). Several keys allow rotation: values encrypted under any listed key still decrypt,
new values use the first key, and ``manage.py rotate_fernet_keys`` re-encrypts every value under it.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            "FLOWSITE_FERNET_KEYS must hold url-safe base64 32-byte keys "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from error


def fernet() -> MultiFernet:
    keys = tuple(settings.FLOWSITE_FERNET_KEYS)
    if not keys:
        raise ImproperlyConfigured("FLOWSITE_FERNET_KEYS is empty; Flow secrets cannot be stored.")
    return _fernet(keys)


def encrypt(value: str) -> str:
    if not value:
        return ""
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        # A value written before encryption existed; it is re-encrypted on the next save.
        return stored
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as error:
        raise ImproperlyConfigured(
            "A stored Flow secret cannot be decrypted with FLOWSITE_FERNET_KEYS; "
            "was a key removed before `manage.py rotate_fernet_keys` ran?"
        ) from error


def rotate(stored: str) -> str:
    """The same secret, re-encrypted under the newest key."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        return encrypt(stored)
    return PREFIX + fernet().rotate(stored[len(PREFIX) :].encode()).decode()


def mask(value: str) -> str:
    """Enough of a secret for a person to recognise it, never enough to use it."""
    if not value:
        return ""
    if len(value) <= 12:
        return "•" * 8
    return f"{value[:4]}…{value[-4:]}"


class EncryptedTextField(models.TextField):
    """A text field whose value is encrypted in the database and plain in Python."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value is not None else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
