"""Add, list and update the Flow accounts whose credits projects spend.

    manage.py flow_account add LABEL (--bearer-token T | --session-cookie C) [--tier TIER]
    manage.py flow_account list
    manage.py flow_account update LABEL [--bearer-token T | --session-cookie C] [--tier TIER]
                                        [--label NEW]

A secret given as ``-`` is read from standard input, so it stays out of the shell history and
the process list. Secrets are never printed in full.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from generations import work
from generations.engines.catalogue import TIER_ONE, TIERS
from generations.models import FlowAccount

TIER_KEYS = [key for key, _ in TIERS]
SESSION_COOKIE_NAME = "__Secure-next-auth.session-token"


def clean_bearer_token(value: str) -> str:
    """The token alone, whether pasted bare or as an ``Authorization`` header value."""
    token = value.strip()
    if token.lower().startswith("authorization:"):
        token = token.split(":", 1)[1].strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :].strip()
    if not token:
        raise ValueError("The bearer token is empty.")
    if any(char.isspace() for char in token):
        raise ValueError("A bearer token has no spaces; paste only the token (it starts ya29.).")
    return token


def clean_session_cookie(value: str) -> str:
    """The session cookie's value, whether pasted bare, as name=value or as a Cookie header."""
    raw = value.strip()
    if raw.lower().startswith("cookie:"):
        raw = raw.split(":", 1)[1].strip()
    if "=" in raw:
        pairs = dict(part.strip().split("=", 1) for part in raw.split(";") if "=" in part.strip())
        if SESSION_COOKIE_NAME in pairs:
            raw = pairs[SESSION_COOKIE_NAME].strip()
        elif len(pairs) > 1:
            raise ValueError(f"The pasted cookies do not include {SESSION_COOKIE_NAME}.")
    if not raw:
        raise ValueError("The session cookie is empty.")
    if any(char.isspace() for char in raw):
        raise ValueError("A session cookie has no spaces; paste only its value.")
    return raw


def mask(value: str) -> str:
    """Enough of a secret to recognise it, never enough to use it."""
    if not value:
        return "-"
    if len(value) <= 12:
        return "•" * 8
    return f"{value[:4]}…{value[-4:]}"


class Command(BaseCommand):
    help = "Add, list or update the Flow accounts whose credits projects spend."
    # Lets tests and scripts hand a secret over a stream, as `createsuperuser` does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        add = actions.add_parser("add", help="Add an account.")
        add.add_argument("label")
        secret = add.add_mutually_exclusive_group(required=True)
        secret.add_argument("--bearer-token", metavar="TOKEN", help="'-' reads it from stdin")
        secret.add_argument("--session-cookie", metavar="COOKIE", help="'-' reads it from stdin")
        add.add_argument("--tier", choices=TIER_KEYS, default=TIER_ONE)

        actions.add_parser("list", help="List the accounts (secrets masked).")

        update = actions.add_parser("update", help="Change an account's secret, tier or label.")
        update.add_argument("label")
        secret = update.add_mutually_exclusive_group()
        secret.add_argument("--bearer-token", metavar="TOKEN", help="'-' reads it from stdin")
        secret.add_argument("--session-cookie", metavar="COOKIE", help="'-' reads it from stdin")
        update.add_argument("--tier", choices=TIER_KEYS)
        update.add_argument("--label", dest="new_label", metavar="NEW_LABEL")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        action = options["action"]
        if action == "add":
            self.add(options)
        elif action == "list":
            self.list()
        else:
            self.update(options)

    def add(self, options: dict[str, Any]) -> None:
        label = _clean_label(options["label"])
        if FlowAccount.objects.filter(label=label).exists():
            raise CommandError(
                f"An account labelled {label!r} already exists; "
                f"change it with: flow_account update {label!r} ..."
            )
        bearer, cookie = self._secrets(options)
        with transaction.atomic():
            account = FlowAccount.objects.create(
                label=label, tier=options["tier"], bearer_token=bearer, session_cookie=cookie
            )
        self.stdout.write(
            f"Added account {account.label!r} ({account.get_tier_display()}, "
            f"{account.auth_kind} {mask(bearer or cookie)})."
        )

    def list(self) -> None:
        accounts = list(FlowAccount.objects.order_by("label"))
        if not accounts:
            self.stdout.write("No Flow accounts yet. Add one with: flow_account add LABEL ...")
            return
        rows = [
            [
                account.label,
                account.tier,
                account.auth_kind,
                mask(account.session_cookie or account.bearer_token),
                "?" if account.credits is None else str(account.credits),
                account.problem or "",
            ]
            for account in accounts
        ]
        self.stdout.write(table(["LABEL", "TIER", "AUTH", "SECRET", "CREDITS", "PROBLEM"], rows))

    def update(self, options: dict[str, Any]) -> None:
        label = options["label"].strip()
        new_label = options["new_label"]
        tier = options["tier"]
        has_secret = options["bearer_token"] is not None or options["session_cookie"] is not None
        if new_label is None and tier is None and not has_secret:
            raise CommandError(
                "Nothing to change: give --bearer-token, --session-cookie, --tier or --label."
            )
        try:
            account = FlowAccount.objects.get(label=label)
        except FlowAccount.DoesNotExist:
            raise CommandError(f"No account is labelled {label!r}.") from None

        fields: list[str] = []
        if new_label is not None:
            new_label = _clean_label(new_label)
            if FlowAccount.objects.filter(label=new_label).exclude(pk=account.pk).exists():
                raise CommandError(f"An account labelled {new_label!r} already exists.")
            account.label = new_label
            fields.append("label")
        if tier is not None:
            account.tier = tier
            fields.append("tier")
        if has_secret:
            # Forgets the token minted from the old ones and the old trouble; once saved, the
            # takes that waited for this fix resume.
            account.replace_credentials(*self._secrets(options))
            fields += FlowAccount.CREDENTIAL_FIELDS
        account.save(update_fields=fields)
        if has_secret:
            work.resume_waiting(account)
        self.stdout.write(f"Updated account {account.label!r}: {', '.join(fields)}.")

    def _secrets(self, options: dict[str, Any]) -> tuple[str, str]:
        """(bearer token, session cookie): exactly one set, cleaned, read from stdin for '-'."""
        try:
            if options["bearer_token"] is not None:
                return clean_bearer_token(self._value(options["bearer_token"])), ""
            return "", clean_session_cookie(self._value(options["session_cookie"]))
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _value(self, given: str) -> str:
        if given != "-":
            return given
        return self.stdin.readline()


def _clean_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise CommandError("The label is empty; name the account, e.g. 'Studio'.")
    max_length = FlowAccount._meta.get_field("label").max_length
    if len(label) > max_length:
        raise CommandError(f"The label is longer than {max_length} characters.")
    return label


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width table (no dependency, readable in a terminal and in a log)."""
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
