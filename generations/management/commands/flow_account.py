"""Add, list and update the Flow accounts whose credits projects spend, and say who may.

    manage.py flow_account add LABEL (--bearer-token T | --session-cookie C) [--tier TIER]
    manage.py flow_account list
    manage.py flow_account update LABEL [--bearer-token T | --session-cookie C] [--tier TIER]
                                        [--label NEW]
    manage.py flow_account grant LABEL (--user USERNAME | --project NAME)
    manage.py flow_account revoke LABEL (--user USERNAME | --project NAME)

A person granted an account may create projects that spend it; a project may generate while its
account is granted to it or to one of its owners.

A secret given as ``-`` is read from standard input, so it stays out of the shell history and
the process list. Secrets are never printed in full.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Prefetch

from generations import work
from generations.engines.catalogue import TIER_ONE, TIERS
from generations.models import AccountGrant, AuditEvent, FlowAccount, Project
from generations.rules import ACCOUNT_LABEL, printable

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

        for name, text in (
            ("grant", "Let a person (or one project) spend the account."),
            ("revoke", "Take a grant back; takes already queued still go to Flow."),
        ):
            grant = actions.add_parser(name, help=text)
            grant.add_argument("label")
            grantee = grant.add_mutually_exclusive_group(required=True)
            grantee.add_argument("--user", metavar="USERNAME")
            grantee.add_argument("--project", metavar="NAME", help="its name or its UUID")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        action = options["action"]
        if action == "add":
            self.add(options)
        elif action == "list":
            self.list()
        elif action == "grant":
            self.grant(options)
        elif action == "revoke":
            self.revoke(options)
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
        grants = AccountGrant.objects.select_related("user", "project").order_by("id")
        accounts = list(
            FlowAccount.objects.order_by("label").prefetch_related(
                Prefetch("grants", queryset=grants)
            )
        )
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
                ", ".join(_grantee(grant) for grant in account.grants.all()) or "nobody",
                account.problem or "",
            ]
            for account in accounts
        ]
        headers = ["LABEL", "TIER", "AUTH", "SECRET", "CREDITS", "GRANTS", "PROBLEM"]
        self.stdout.write(table(headers, rows))

    def grant(self, options: dict[str, Any]) -> None:
        account = _account(options["label"])
        grantee = _grantee_options(options)
        grant, created = AccountGrant.objects.get_or_create(account=account, **grantee)
        whom = _grantee(AccountGrant(**grantee))
        if created:
            AuditEvent.record(
                AuditEvent.Action.ACCOUNT_GRANTED,
                None,
                grant.project,
                account=account.label,
                to=whom,
                by="manage.py flow_account",
            )
            self.stdout.write(f"Granted account {account.label!r} to {whom}.")
        else:
            self.stdout.write(f"Account {account.label!r} was already granted to {whom}.")

    def revoke(self, options: dict[str, Any]) -> None:
        account = _account(options["label"])
        grantee = _grantee_options(options)
        whom = _grantee(AccountGrant(**grantee))
        deleted, _ = AccountGrant.objects.filter(account=account, **grantee).delete()
        if not deleted:
            raise CommandError(f"Account {account.label!r} is not granted to {whom}.")
        AuditEvent.record(
            AuditEvent.Action.ACCOUNT_REVOKED,
            None,
            grantee.get("project"),
            account=account.label,
            to=whom,
            by="manage.py flow_account",
        )
        self.stdout.write(
            f"Revoked account {account.label!r} from {whom}; new takes on it are refused "
            "unless another grant covers them."
        )

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


def _account(label: str) -> FlowAccount:
    try:
        return FlowAccount.objects.get(label=label.strip())
    except FlowAccount.DoesNotExist:
        raise CommandError(f"No account is labelled {label!r}.") from None


def _grantee_options(options: dict[str, Any]) -> dict[str, Any]:
    """``{"user": ...}`` or ``{"project": ...}`` for --user or --project."""
    if options["user"] is not None:
        User = get_user_model()
        username = options["user"].strip()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user is called {username!r}.")
        return {"user": user}
    name = options["project"].strip()
    projects = Project.objects.filter(name=name)
    with contextlib.suppress(ValueError):
        projects = Project.objects.filter(uuid=UUID(name))
    found = list(projects[:2])
    if not found:
        raise CommandError(f"No project is named {name!r}.")
    if len(found) > 1:
        raise CommandError(f"Several projects are named {name!r}; give the project's UUID instead.")
    return {"project": found[0]}


def _grantee(grant: AccountGrant) -> str:
    if grant.project_id is not None:
        return f"project {grant.project.name!r}"
    return grant.user.get_username()


def _clean_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise CommandError("The label is empty; name the account, e.g. 'Studio'.")
    max_length = FlowAccount._meta.get_field("label").max_length
    if len(label) > max_length:
        raise CommandError(f"The label is longer than {max_length} characters.")
    try:
        ACCOUNT_LABEL(label)
    except ValidationError as invalid:
        raise CommandError(printable(invalid.messages[0])) from None
    return label


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width table (no dependency, readable in a terminal and in a log)."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
