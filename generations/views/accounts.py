"""Which of their granted accounts a project spends, and in what order: the owners' form
(posted to ``manage.project_accounts``) and each account's state in words.

One POST from the settings page, without JavaScript: every account staff granted to the
project or to one of its owners has a place to pick ("not used", 1st, 2nd, ...). The first
becomes the project's account (its scenes are judged and priced on it); the worker falls back
on the others in order (generations/failover.py).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import AccountGrant, FlowAccount, Project, ProjectAccount, still_granted

ORDINALS = ["1st", "2nd", "3rd"]


def ordinal(place: int) -> str:
    return ORDINALS[place - 1] if place <= len(ORDINALS) else f"{place}th"


def grantable_accounts(project: Project) -> list[FlowAccount]:
    """The accounts an owner may choose for this project: granted to it or to one of its
    owners (``AccountGrant.allowing``). One query."""
    granted = AccountGrant.objects.allowing(project).filter(account_id=OuterRef("pk"))
    return list(FlowAccount.objects.filter(Exists(granted)).order_by("label"))


class AccountOrderForm(forms.Form):
    """A place for each account the project may spend; an empty place: not used."""

    def __init__(self, project: Project, accounts: list[FlowAccount], order, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.accounts = accounts
        current = {account.pk: place for place, account in enumerate(order, start=1)}
        choices = [("", "Not used")] + [
            (str(place), ordinal(place)) for place in range(1, len(accounts) + 1)
        ]
        for account in accounts:
            self.fields[self.field_name(account)] = forms.TypedChoiceField(
                label=str(account),
                choices=choices,
                coerce=int,
                empty_value=None,
                required=False,
                initial=current.get(account.pk, ""),
            )

    @staticmethod
    def field_name(account: FlowAccount) -> str:
        return f"place-{account.uuid}"

    def rows(self):
        """Each account with its place field and its state in words, for the template."""
        now = timezone.now()
        return [
            (account, self[self.field_name(account)], account.state_words(now))
            for account in self.accounts
        ]

    def clean(self):
        data = super().clean()
        chosen: dict[int, FlowAccount] = {}
        for account in self.accounts:
            place = data.get(self.field_name(account))
            if place is None:
                continue
            if place in chosen:
                raise ValidationError(
                    f"{chosen[place]} and {account} are both {ordinal(place)}; give each "
                    "account its own place."
                )
            chosen[place] = account
        if not chosen:
            raise ValidationError(
                "Choose at least one account: the project needs one to generate anything."
            )
        ordered = [chosen[place] for place in sorted(chosen)]
        first = ordered[0]
        for account in ordered[1:]:
            if account.kind != first.kind:
                raise ValidationError(
                    f"{account} is a {account.get_kind_display()} account and {first} a "
                    f"{first.get_kind_display()} one: a project's scenes are made for one "
                    "kind, so all its accounts must be of that kind."
                )
        problem = self.project.engine_move_problem(first)
        if problem:
            raise ValidationError(problem)
        data["ordered"] = ordered
        return data


def account_order_form(project: Project, data=None) -> AccountOrderForm:
    return AccountOrderForm(project, grantable_accounts(project), project.accounts_in_order(), data)


def account_states(accounts: list[FlowAccount]) -> list[tuple[FlowAccount, str]]:
    """Each account with what keeps it from taking work now ("" when nothing does)."""
    now = timezone.now()
    return [(account, account.state_words(now)) for account in accounts]


# What the project page says of an account the project may no longer spend.
NOT_GRANTED = (
    "Not usable: staff have not granted it to {project} or to one of its owners. Ask an admin."
)


def first_account_granted() -> Exists:
    """An annotation for the project lookup: whether the project may still spend its first
    account (``still_granted``), so the page can say so without a query of its own."""
    return still_granted(account="project__account_id")


def spend_refusal(project: Project, membership) -> str:
    """What every card's Generate says, instead of its price, while the project may no longer
    spend its first account (on which its scenes are priced, and every Generate is refused):
    the refusal Generate would answer with; "" when it may. Its takes' Extend, Upscale and
    Retry spend that account too and are refused alike, so they say it as well. From the
    lookup's ``account_granted`` when it has one (the page, the poll); else asked once per
    project instance (``Project.spending_problem``), which a Generate just asked already."""
    if project.account_id is None or not membership.can_edit:
        return ""  # the card's own problem says so, or it shows no Generate at all
    if getattr(membership, "account_granted", False):
        return ""
    return project.spending_problem()


def later_accounts_exist() -> Exists:
    """An annotation for the project lookup: whether the project has accounts after its
    first, so a page reads them (one more query) only when there are some."""
    return Exists(ProjectAccount.objects.filter(project_id=OuterRef("project_id")))


def project_account_states(
    project: Project, has_later: bool, first_granted: bool
) -> list[tuple[FlowAccount, str]]:
    """The project's accounts in order, each with its state, for the project page; an account
    the project may no longer spend says so (``first_granted``: whether the first still is),
    since every Generate on it is refused and the worker skips it."""
    if has_later:
        accounts = project.accounts_in_order()
    else:
        accounts = [project.account] if project.account_id is not None else []
    if project.account_id is not None:
        project.account.note_granted(first_granted)
    not_granted = NOT_GRANTED.format(project=project)
    return [
        (account, state if account.granted else not_granted)
        for account, state in account_states(accounts)
    ]
