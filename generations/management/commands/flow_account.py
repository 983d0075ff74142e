"""Add, list and update the Flow accounts whose credits projects spend, and say who may.

    manage.py flow_account add LABEL (--bearer-token T | --session-cookie C) [--tier TIER]
    manage.py flow_account add LABEL --vertex-project PROJECT [--vertex-location REGION]
                               (--service-account-file KEY.json | --bearer-token T)
                               [--storage-uri gs://BUCKET/PREFIX]
    manage.py flow_account list
    manage.py flow_account update LABEL [--bearer-token T | --session-cookie C
                                         | --service-account-file KEY.json] [--tier TIER]
                                        [--vertex-project P] [--vertex-location R]
                                        [--storage-uri URI] [--label NEW]
    manage.py flow_account grant LABEL (--user USERNAME | --project NAME)
    manage.py flow_account revoke LABEL (--user USERNAME | --project NAME)

A person granted an account may create projects that spend it; a project may generate while its
account is granted to it or to one of its owners.

An account given ``--vertex-project`` is a Vertex AI account (the team's Google Cloud project
pays); any other is a Google Flow account. A key file given as ``-`` is read from standard
input to its end.

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
from generations.engines.vertex import KEY_NOT_JSON, clean_service_account_key, key_email
from generations.models import AccountGrant, AuditEvent, FlowAccount, Project
from generations.rules import (
    ACCOUNT_LABEL,
    DEFAULT_VERTEX_LOCATION,
    STORAGE_URI,
    VERTEX_LOCATION,
    VERTEX_PROJECT,
    printable,
)

TIER_KEYS = [key for key, _ in TIERS]
SESSION_COOKIE_NAME = "__Secure-next-auth.session-token"
# Vertex AI bills each clip in US dollars; a Flow tier would be stored and mean nothing.
NO_TIER = "A Vertex AI account has no Flow tier; --tier belongs to a Google Flow account."


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
        secret.add_argument(
            "--service-account-file", metavar="KEY.json", help="Vertex AI; '-' reads stdin"
        )
        add.add_argument("--tier", choices=TIER_KEYS, help=f"Google Flow; default {TIER_ONE}")
        add_vertex_arguments(add)

        actions.add_parser("list", help="List the accounts (secrets masked).")

        update = actions.add_parser("update", help="Change an account's secret, tier or label.")
        update.add_argument("label")
        secret = update.add_mutually_exclusive_group()
        secret.add_argument("--bearer-token", metavar="TOKEN", help="'-' reads it from stdin")
        secret.add_argument("--session-cookie", metavar="COOKIE", help="'-' reads it from stdin")
        secret.add_argument(
            "--service-account-file", metavar="KEY.json", help="Vertex AI; '-' reads stdin"
        )
        update.add_argument("--tier", choices=TIER_KEYS)
        add_vertex_arguments(update)
        update.add_argument("--label", dest="new_label", metavar="NEW_LABEL")

        for name, text in (
            ("grant", "Let a person (or one project) spend the account."),
            ("revoke", "Take a grant back; queued takes no longer go out on the account."),
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
        if options["vertex_project"] is not None:
            self.add_vertex(label, options)
            return
        if options["service_account_file"] is not None or options["storage_uri"] is not None:
            raise CommandError(
                "A service-account key or a results prefix belongs to a Vertex AI account: "
                "give --vertex-project too."
            )
        if options["vertex_location"] is not None:
            raise CommandError("A region belongs to a Vertex AI account: give --vertex-project.")
        bearer, cookie, _ = self._secrets(options)
        with transaction.atomic():
            account = FlowAccount.objects.create(
                label=label,
                tier=options["tier"] or TIER_ONE,
                bearer_token=bearer,
                session_cookie=cookie,
            )
        self.stdout.write(
            f"Added account {account.label!r} ({account.get_tier_display()}, "
            f"{account.auth_kind} {mask(bearer or cookie)})."
        )

    def add_vertex(self, label: str, options: dict[str, Any]) -> None:
        if options["session_cookie"] is not None:
            raise CommandError(
                "A Vertex AI account signs in with --service-account-file or --bearer-token, "
                "not a Flow session cookie."
            )
        if options["tier"] is not None:
            raise CommandError(NO_TIER)
        if options["service_account_file"] is None and options["bearer_token"] is None:
            raise CommandError(
                "A Vertex AI account needs --service-account-file KEY.json (or a pasted access "
                "token with --bearer-token)."
            )
        account = FlowAccount(
            label=label,
            kind=FlowAccount.Kind.VERTEX,
            vertex_project=_checked(VERTEX_PROJECT, options["vertex_project"]),
            vertex_location=_checked(
                VERTEX_LOCATION, options["vertex_location"] or DEFAULT_VERTEX_LOCATION
            ),
            storage_uri=_checked(STORAGE_URI, options["storage_uri"] or ""),
        )
        bearer, _, key = self._secrets(options)
        account.bearer_token, account.service_account_key = bearer, key
        with transaction.atomic():
            account.save()
        self.stdout.write(
            f"Added Vertex AI account {account.label!r} (project {account.vertex_project}, "
            f"{account.vertex_location}, {account.auth_kind} {_hint(account)})."
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
                f"vertex {account.vertex_project} {account.vertex_location}"
                if account.is_vertex
                else f"flow {account.tier}",
                account.auth_kind,
                _hint(account),
                "?" if account.credits is None else str(account.credits),
                ", ".join(_grantee(grant) for grant in account.grants.all()) or "nobody",
                account.problem or "",
            ]
            for account in accounts
        ]
        headers = ["LABEL", "ENGINE", "AUTH", "SECRET", "CREDITS", "GRANTS", "PROBLEM"]
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
        has_secret = any(
            options[name] is not None
            for name in ("bearer_token", "session_cookie", "service_account_file")
        )
        vertex_names = ("vertex_project", "vertex_location", "storage_uri")
        if (
            new_label is None
            and tier is None
            and not has_secret
            and all(options[name] is None for name in vertex_names)
        ):
            raise CommandError(
                "Nothing to change: give --bearer-token, --session-cookie, "
                "--service-account-file, --tier, --vertex-project, --vertex-location, "
                "--storage-uri or --label."
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
        if not account.is_vertex and any(options[name] is not None for name in vertex_names):
            raise CommandError(
                f"Account {account.label!r} is a Google Flow account; a Google Cloud project, "
                "region or results prefix belongs to a Vertex AI account."
            )
        if account.is_vertex and options["session_cookie"] is not None:
            raise CommandError("A Vertex AI account takes no Flow session cookie.")
        if account.is_vertex and tier is not None:
            raise CommandError(NO_TIER)
        if not account.is_vertex and options["service_account_file"] is not None:
            raise CommandError(
                f"Account {account.label!r} is a Google Flow account; a service-account key "
                "belongs to a Vertex AI account."
            )
        validators = {
            "vertex_project": VERTEX_PROJECT,
            "vertex_location": VERTEX_LOCATION,
            "storage_uri": STORAGE_URI,
        }
        for name in vertex_names:
            if options[name] is not None:
                setattr(account, name, _checked(validators[name], options[name]))
                fields.append(name)
        if has_secret:
            # Forgets the token minted from the old ones and the old trouble; once saved, the
            # takes that waited for this fix resume.
            account.replace_credentials(*self._secrets(options))
            fields += FlowAccount.CREDENTIAL_FIELDS
        account.save(update_fields=fields)
        if has_secret:
            work.resume_waiting(account)
        self.stdout.write(f"Updated account {account.label!r}: {', '.join(fields)}.")

    def _secrets(self, options: dict[str, Any]) -> tuple[str, str, str]:
        """(bearer token, session cookie, service-account key): exactly one set, cleaned,
        read from stdin for '-'."""
        try:
            if options["bearer_token"] is not None:
                return clean_bearer_token(self._value(options["bearer_token"])), "", ""
            if options.get("service_account_file") is not None:
                return "", "", clean_service_account_key(self._key_file(options))
            return "", clean_session_cookie(self._value(options["session_cookie"])), ""
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _key_file(self, options: dict[str, Any]) -> str:
        path = options["service_account_file"]
        try:
            if path == "-":
                return self.stdin.read()
            with open(path, encoding="utf-8") as file:
                return file.read(1_000_000)
        except UnicodeDecodeError:
            # Bytes that are no text (a picture, an archive) are no key file either: said as
            # for any other file that is not JSON, not as the codec's complaint.
            raise ValueError(KEY_NOT_JSON) from None
        except OSError as error:
            raise CommandError(
                f"The service-account key file {path!r} cannot be read: {error.strerror}."
            ) from None

    def _value(self, given: str) -> str:
        if given != "-":
            return given
        return self.stdin.readline()


def add_vertex_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--vertex-project", metavar="PROJECT", help="Google Cloud project id (Vertex AI)"
    )
    parser.add_argument(
        "--vertex-location", metavar="REGION", help=f"default {DEFAULT_VERTEX_LOCATION}"
    )
    parser.add_argument("--storage-uri", metavar="gs://BUCKET/PREFIX", help="Vertex AI results")


def _checked(validator, value: str) -> str:
    value = value.strip()
    if not value and validator is STORAGE_URI:
        return ""  # no results prefix: the clips come back inside the answer
    try:
        validator(value)
    except ValidationError as invalid:
        raise CommandError(printable(invalid.messages[0])) from None
    return value


def _hint(account: FlowAccount) -> str:
    """A masked hint of the account's credential; a key file by the service account it is."""
    if account.secret_sealed:
        return account.SEALED_HINT
    if account.service_account_key:
        return key_email(account.service_account_key) or "key file"
    return mask(account.secret)


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
