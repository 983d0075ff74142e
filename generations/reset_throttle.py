"""The password-reset form, throttled so it cannot spam one address or probe many.

Two limits inside FLOWSITE_RESET_WINDOW_MINUTES, counted the way sign-ins are
(generations/throttle.py): the request is written down first, then the requests before it are
counted, so of many racing in at once none slips past a limit.

- per client address (FLOWSITE_RESET_REQUESTS_PER_ADDRESS): past it the form is refused with
  429 and a sentence about *the client*. Probing many addresses from one place stops here.
- per address typed (FLOWSITE_RESET_EMAILS_PER_ADDRESS): past it no further email goes out,
  but the answer is the usual "if an account has this address, an email is on its way": it says
  nothing the answer for an unknown address would not, and the inbox is not flooded.

Neither answer depends on whether an account has the address, so the form never tells.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.views import PasswordResetView
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .models import PasswordResetRequest
from .throttle import THROTTLED, _minutes, _wait, answer_429_when_throttled, client_address


def email_key(email: str) -> str:
    """The typed address as counted: NFKC, trimmed, case-folded, then hashed with the secret
    key (an address nobody here has is not stored in the clear)."""
    text = unicodedata.normalize("NFKC", email or "").strip().casefold()
    return salted_hmac("flowsite-password-reset", text, algorithm="sha256").hexdigest()


def window() -> timedelta:
    return timedelta(minutes=settings.FLOWSITE_RESET_WINDOW_MINUTES)


class ThrottledPasswordResetForm(PasswordResetForm):
    def __init__(self, *args: Any, request=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.row: PasswordResetRequest | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        email = data.get("email")
        if not email:
            return data
        now = timezone.now()
        PasswordResetRequest.objects.filter(at__lte=now - window()).delete()
        address = client_address(self.request)
        self.row = PasswordResetRequest.objects.create(
            email_key=email_key(email), address=address, at=now
        )
        limit = settings.FLOWSITE_RESET_REQUESTS_PER_ADDRESS
        if not address or limit <= 0:
            return data
        earlier = PasswordResetRequest.objects.filter(address=address).exclude(pk=self.row.pk)
        if earlier.filter(at__gt=now - window()).count() >= limit:
            # A refused request counts for nothing: hammering does not extend the wait.
            PasswordResetRequest.objects.filter(pk=self.row.pk).delete()
            self.row = None
            wait = _wait(earlier, limit, now, window())
            raise forms.ValidationError(
                "Too many password-reset requests from your network address; try again in "
                f"{_minutes(wait)}.",
                code=THROTTLED,
            )
        return data

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Send the email unless this address was sent enough of them lately; the answer
        the person sees is the same either way."""
        limit = settings.FLOWSITE_RESET_EMAILS_PER_ADDRESS
        if self.row is not None and limit > 0:
            earlier = PasswordResetRequest.objects.filter(
                email_key=self.row.email_key, at__gt=timezone.now() - window()
            ).exclude(pk=self.row.pk)
            if earlier.count() >= limit:
                return
        super().save(*args, **kwargs)


class ThrottledPasswordResetView(PasswordResetView):
    form_class = ThrottledPasswordResetForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}


password_reset = answer_429_when_throttled(ThrottledPasswordResetView.as_view())
