"""Sign-in throttling, per (username, address), per address, and per username.

Both sign-in doors (the studio's /accounts/login/ and the admin's /admin/login/) use a form that
counts the attempt before it checks any password: the attempt is written down first, as if it
had failed, and only then are the attempts before it counted. Of any number of attempts racing
in at once, each sees at least every attempt written before it, so no more than the limit ever
reach the password check. An attempt refused is answered with 429 and a sentence saying how
long to wait, its row is removed (hammering does not extend the wait) and its password is never
looked at; an attempt that signs in removes its own row and that username's failures from that
address; an attempt with a wrong password keeps its row, which is its failure.

The limits, inside the window (FLOWSITE_SIGNIN_WINDOW_MINUTES):

- one username from one address: FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT failures lock that pair;
- one address, whatever the usernames: FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS failures lock it;
- one username from anywhere: past FLOWSITE_SIGNIN_SLOWDOWN_AFTER failures, its attempts are
  only slowed down, one every FLOWSITE_SIGNIN_SLOWDOWN_SECONDS. Locking it instead would let
  anyone lock the real person out by failing as them; slowed down, guessing from many addresses
  stays slow and the real person waits seconds, not minutes.

Rows are in the database (``SignInFailure``), not the per-process cache, so every web worker
shares the counts. The attempt is written in its own statement, outside any transaction, so the
other workers see it at once.
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
from django.contrib.auth import user_logged_in
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.db.models import Count, Q
from django.dispatch import receiver
from django.forms.forms import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import SignInFailure

THROTTLED = "throttled"
TOO_MANY_REQUESTS = 429


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


def _wait(failures, limit: int, now: datetime, window: timedelta) -> timedelta:
    """How long until fewer than ``limit`` of these failures are inside the window."""
    recent = list(
        failures.filter(at__gt=now - window).order_by("-at").values_list("at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return timedelta(0)
    # The count drops below the limit when the limit-th newest failure leaves the window.
    return recent[-1] + window - now


def _minutes(wait: timedelta) -> str:
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _seconds(wait: timedelta) -> str:
    seconds = max(1, math.ceil(wait.total_seconds()))
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class Attempt:
    """One sign-in attempt, counted before its password is checked."""

    def __init__(self, request: HttpRequest | None, username: str | None) -> None:
        self.username = username_key(username)
        self.address = client_address(request)
        self.row: SignInFailure | None = None

    def begin(self) -> str:
        """Write the attempt down, then say why it must not be tried ("" when it may be)."""
        now = timezone.now()
        self.row = SignInFailure.objects.create(
            username=self.username, address=self.address, at=now
        )
        refusal = self._refusal(now)
        if refusal:
            self.forget()
        return refusal

    def _refusal(self, now: datetime) -> str:
        window = timedelta(minutes=settings.FLOWSITE_SIGNIN_WINDOW_MINUTES)
        slowdown = timedelta(seconds=settings.FLOWSITE_SIGNIN_SLOWDOWN_SECONDS)
        per_pair = settings.FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT
        per_address = settings.FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS
        slowdown_after = settings.FLOWSITE_SIGNIN_SLOWDOWN_AFTER
        pair = Q(username=self.username, address=self.address)
        same_address = Q(address=self.address) if self.address else Q(pk__in=[])
        # Every attempt written before this one (and perhaps some after): one statement.
        others = SignInFailure.objects.filter(at__gt=now - window).exclude(pk=self.row.pk)
        counts = others.filter(Q(username=self.username) | same_address).aggregate(
            from_pair=Count("pk", filter=pair),
            from_address=Count("pk", filter=same_address),
            for_username=Count("pk", filter=Q(username=self.username)),
            for_username_lately=Count(
                "pk", filter=Q(username=self.username, at__gt=now - slowdown)
            ),
        )
        if per_pair > 0 and counts["from_pair"] >= per_pair:
            wait = _wait(others.filter(pair), per_pair, now, window)
            return f"Too many failed sign-ins for this account; try again in {_minutes(wait)}."
        if self.address and per_address > 0 and counts["from_address"] >= per_address:
            wait = _wait(others.filter(same_address), per_address, now, window)
            return (
                "Too many failed sign-ins from your network address; "
                f"try again in {_minutes(wait)}."
            )
        if (
            slowdown_after > 0
            and counts["for_username"] >= slowdown_after
            and counts["for_username_lately"]
        ):
            latest = others.filter(username=self.username).latest("at").at
            wait = max(latest + slowdown - now, timedelta(0))
            return (
                "This account has had many failed sign-ins, so Flowsite tries one sign-in for "
                f"it every {_seconds(slowdown)}; try again in {_seconds(wait)}."
            )
        return ""

    def forget(self) -> None:
        """The attempt was refused or succeeded: it counts as no failure."""
        if self.row is not None:
            SignInFailure.objects.filter(pk=self.row.pk).delete()
            self.row = None


def prune() -> None:
    """Rows past the window count for nothing; dropping them keeps the table small."""
    window = timedelta(minutes=settings.FLOWSITE_SIGNIN_WINDOW_MINUTES)
    SignInFailure.objects.filter(at__lte=timezone.now() - window).delete()


@receiver(user_logged_in, dispatch_uid="flowsite-forget-sign-in-failures")
def forget_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    SignInFailure.objects.filter(
        username=username_key(user.get_username()), address=client_address(request)
    ).delete()


class _ThrottleFirst:
    """Mixed into an authentication form: the attempt is counted before the password is
    checked, and refused without checking it past a limit."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    user_cache: Any

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if not username or not self.cleaned_data.get("password"):
            return super().clean()  # type: ignore[misc]  # no password is checked
        prune()
        attempt = Attempt(self.request, username)
        message = attempt.begin()
        if message:
            raise forms.ValidationError(message, code=THROTTLED)
        # A wrong password raises here and leaves the attempt's row: that is its failure.
        data = super().clean()  # type: ignore[misc]
        attempt.forget()
        return data


class ThrottledAuthenticationForm(_ThrottleFirst, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_ThrottleFirst, AdminAuthenticationForm):
    pass


def answer_429_when_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A throttled form (sign-in, password reset) re-shown with the refusal says 429 Too Many
    Requests, not 200."""

    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if isinstance(form, forms.Form) and form.has_error(NON_FIELD_ERRORS, THROTTLED):
            response.status_code = TOO_MANY_REQUESTS
        return response

    return wrapper


sign_in = answer_429_when_throttled(
    LoginView.as_view(authentication_form=ThrottledAuthenticationForm)
)
