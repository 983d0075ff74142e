"""Flow credentials encrypted at rest.

Bearer tokens and labs session cookies spend a team's credits, so the database never holds them
in the clear: they are Fernet tokens under the keys in ``FLOWSITE_FERNET_KEYS`` (comma-separated,
newest first). Several keys allow rotation: values encrypted under any listed key still decrypt,
new values use the first key, and ``manage.py rotate_fernet_keys`` re-encrypts every value under it.

Every process (web, worker, management commands) must use the same keys. A value no listed key
decrypts does not break the query that loads its account: it stays ``Sealed`` and only reading it
raises ``UndecryptableSecret``, so pages that list or choose accounts keep working while the
worker, which needs the secret, says in words why that one account cannot be used.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.query_utils import DeferredAttribute

PREFIX = "fernet:"

UNDECRYPTABLE = (
    "A stored Flow secret cannot be decrypted with FLOWSITE_FERNET_KEYS: it was stored by a "
    "process with other keys (the web app, the worker and every command must use the same "
    "keys), or a key was removed before `manage.py rotate_fernet_keys` ran."
)


class UndecryptableSecret(ValueError):
    """A stored secret none of FLOWSITE_FERNET_KEYS decrypts.

    A ValueError as a malformed secret is: whoever signs calls with it says the account has no
    usable secret, and the other accounts carry on."""


class Sealed:
    """A stored secret no listed key decrypts, kept as stored so that saving its account
    writes it back unchanged (the right key may still come back)."""

    __slots__ = ("stored",)

    def __init__(self, stored: str) -> None:
        self.stored = stored

    def __repr__(self) -> str:
        return "<Sealed secret>"


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
        raise UndecryptableSecret(UNDECRYPTABLE) from error


def rotate(stored: str) -> str:
    """The same secret, re-encrypted under the newest key."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        return encrypt(stored)
    try:
        return PREFIX + fernet().rotate(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as error:
        raise UndecryptableSecret(UNDECRYPTABLE) from error


def mask(value: str) -> str:
    """Enough of a secret for a person to recognise it, never enough to use it."""
    if not value:
        return ""
    if len(value) <= 12:
        return "•" * 8
    return f"{value[:4]}…{value[-4:]}"


def is_sealed(instance: models.Model, *fields: str) -> bool:
    """Whether any of these loaded secret fields of ``instance`` is one no key decrypts."""
    return any(isinstance(instance.__dict__.get(name), Sealed) for name in fields)


class DecryptedAttribute(DeferredAttribute):
    """Raises ``UndecryptableSecret`` when a sealed secret is read, not when it is loaded."""

    def __get__(self, instance, cls=None):
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            raise UndecryptableSecret(UNDECRYPTABLE)
        return value

    # A data descriptor, so that reads come here even once the value sits in the instance's
    # __dict__ (a plain DeferredAttribute is only asked while the field is deferred).
    def __set__(self, instance, value) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """A text field whose value is encrypted in the database and plain in Python."""

    descriptor_class = DecryptedAttribute

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        try:
            return decrypt(value)
        except UndecryptableSecret:
            return Sealed(value)

    def pre_save(self, model_instance, add):
        value = model_instance.__dict__.get(self.attname)
        if isinstance(value, Sealed):
            return value
        return super().pre_save(model_instance, add)

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return value.stored
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
