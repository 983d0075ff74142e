"""Sign-in throttling, per account (username) and per client address.

Both sign-in doors (the studio's /accounts/login/ and the admin's /admin/login/) use a form
that asks ``refusal()`` before it checks any password: past the limit the attempt is refused
with a sentence saying how long to wait, answered with status 429, and the password is never
looked at, so guessing gets no answer at all.

Failures are recorded by listening to Django's ``user_login_failed`` signal, which fires from
``authenticate()`` whichever form called it, and counted in the database (``SignInFailure``)
so every web worker shares the counts. A successful sign-in forgets that account's failures
from that address; anything else simply ages out of the window.

Two attempts racing past the check at the same moment can both be tried: the limits are a
brake on guessing, not an exact count.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import user_logged_in, user_login_failed
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.dispatch import receiver
from django.forms.forms import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import SignInFailure

THROTTLED = "throttled"
TOO_MANY_REQUESTS = 429


def _window() -> timedelta:
    return timedelta(minutes=settings.FLOWSITE_SIGNIN_WINDOW_MINUTES)


def username_key(username: str | None) -> str:
    """The account a typed username means, for counting: trimmed, NFKC, case-folded."""
    text = unicodedata.normalize("NFKC", username or "").strip().casefold()
    return text[: SignInFailure._meta.get_field("username").max_length]


def client_address(request: HttpRequest | None) -> str:
    """The client's address, seen through FLOWSITE_TRUSTED_PROXIES proxies.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the client is the
    n-th entry from the right; anything further left was written by the client and is not
    believed. An IPv6 client is counted by its /64, which it can otherwise hop around in.
    """
    if request is None:
        return ""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.FLOWSITE_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _wait(failures, limit: int, now: datetime) -> timedelta | None:
    """How long until fewer than ``limit`` of these failures are inside the window, if any."""
    if limit <= 0:
        return None
    recent = list(
        failures.filter(at__gt=now - _window()).order_by("-at").values_list("at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return None
    # The count drops below the limit when the limit-th newest failure leaves the window.
    return recent[-1] + _window() - now


def _minutes(wait: timedelta) -> str:
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def refusal(request: HttpRequest | None, username: str | None) -> str:
    """Why this sign-in attempt must not even be tried now, in words; "" when it may be."""
    now = timezone.now()
    key = username_key(username)
    if key:
        wait = _wait(
            SignInFailure.objects.filter(username=key),
            settings.FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT,
            now,
        )
        if wait is not None:
            return f"Too many failed sign-ins for this account; try again in {_minutes(wait)}."
    address = client_address(request)
    if address:
        wait = _wait(
            SignInFailure.objects.filter(address=address),
            settings.FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS,
            now,
        )
        if wait is not None:
            return (
                "Too many failed sign-ins from your network address; "
                f"try again in {_minutes(wait)}."
            )
    return ""


@receiver(user_login_failed, dispatch_uid="flowsite-record-sign-in-failure")
def record_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    now = timezone.now()
    # Rows past the window count for nothing; dropping them here keeps the table small.
    SignInFailure.objects.filter(at__lte=now - _window()).delete()
    SignInFailure.objects.create(
        username=username_key(credentials.get("username")),
        address=client_address(request),
        at=now,
    )


@receiver(user_logged_in, dispatch_uid="flowsite-forget-sign-in-failures")
def forget_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    SignInFailure.objects.filter(
        username=username_key(user.get_username()), address=client_address(request)
    ).delete()


class _ThrottleFirst:
    """Mixed into an authentication form: the throttle is asked before the password is."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        message = refusal(self.request, self.cleaned_data.get("username"))
        if message:
            raise forms.ValidationError(message, code=THROTTLED)
        return super().clean()  # type: ignore[misc]


class ThrottledAuthenticationForm(_ThrottleFirst, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_ThrottleFirst, AdminAuthenticationForm):
    pass


def answer_429_when_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The sign-in page re-shown with the refusal says 429 Too Many Requests, not 200."""

    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if isinstance(form, _ThrottleFirst) and form.has_error(NON_FIELD_ERRORS, THROTTLED):
            response.status_code = TOO_MANY_REQUESTS
        return response

    return wrapper


sign_in = answer_429_when_throttled(
    LoginView.as_view(authentication_form=ThrottledAuthenticationForm)
)
