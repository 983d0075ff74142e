"""Projects: the list, creating one, members, the storyboard page and its live poll."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Case, Count, Max, OuterRef, Prefetch, Q, Subquery, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from .. import heartbeat, work
from ..budgets import generate_all_total, generate_all_words, month_spent
from ..forms import MemberAddForm, ProjectForm
from ..models import (
    COST_CREDITS,
    COST_USD,
    AuditEvent,
    CannotGenerate,
    FlowAccount,
    Generation,
    Membership,
    Project,
    Scene,
)
from .access import (
    HtmxHttpRequest,
    Role,
    get_poll_state_for_user,
    get_project_for_user,
    htmx_login_required,
)
from .accounts import first_account_granted, later_accounts_exist, project_account_states
from .cards import (
    TEMPLATE,
    anything_in_flight,
    card_context,
    decode_since,
    newest_change,
    page_token,
    storyboard_scenes,
)


@require_GET
@login_required
def project_detail(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    answered_at = timezone.now()
    project, membership = get_project_for_user(
        request,
        uuid,
        has_later_accounts=later_accounts_exist(),
        account_granted=first_account_granted(),
        # On this lookup, not a query of its own; the page poll does not ask (its answers
        # must stay cheap), so a page opened while the worker is down says so.
        worker_beat=heartbeat.last_beat_subquery(),
    )
    scenes = storyboard_scenes(project)
    live = anything_in_flight(scenes)
    last_generation = max((take.pk for scene in scenes for take in scene.take_list), default=0)
    ctx = card_context(
        project,
        membership,
        since=page_token(newest_change(scenes, project.scenes_changed), answered_at),
        live=live,
        worker_stall=heartbeat.stall(membership.worker_beat, live),
        scenes=scenes,
        has_scenes=bool(scenes),
        last_generation=last_generation,
        generate_all_cost=generate_all_cost(project, membership, scenes),
        generate_all_seen=Scene.storyboard_token(scenes),
        project_accounts=project_account_states(
            project, membership.has_later_accounts, membership.account_granted
        ),
    )
    return render(request, TEMPLATE, ctx)


def generate_all_cost(project: Project, membership: Membership, scenes: list[Scene]) -> str:
    """What Generate all would spend at most, in words; none while the project may no longer
    spend its account (``account_granted``, from the lookup), where every Generate is refused
    and the page says why."""
    if not membership.account_granted:
        return ""
    return generate_all_words(generate_all_total(scenes, project.account), project.account)


def _generate_all_may_differ(
    sent_scenes: list[Scene], since: datetime | None, everything: bool
) -> bool:
    """Whether the poll sends Generate all again: only when what it shows may have changed —
    the whole list (scenes added, deleted or moved, or a page without a token), a scene edited
    (its prompt, image, model or takes: its price), or a take created since the token (the
    newest take the form says the page has seen; such a take is on a card sent now, its
    ``updated`` being no older than its ``created``). A take changing state, most of what
    polls bring, changes neither. Sending it when it did not change only costs time; missing
    a new take would only make Generate all refuse ("New takes appeared"), never pay twice.
    The account's tier, which a price also depends on, reaches the form with the next scene
    change or page load."""
    if everything:
        return True
    return any(
        scene.updated > since or any(take.created > since for take in scene.take_list)
        for scene in sent_scenes
    )


def page_is_live(request: HttpRequest) -> bool:
    """The mode the polling page is in, as its poller says (``live=1``: fast, takes in flight;
    ``live=0``: slow). A poller without it was rendered before pages polled while idle, when
    only pages with takes in flight polled at all."""
    return request.GET.get("live") != "0"


def page_role_changed(request: HttpRequest, role: str) -> bool:
    """Whether the person's role changed since the polling page was drawn (its poller says
    the role it was drawn for, ``role``): an editor made a viewer loses the buttons at once
    rather than finding out by a refused click, and a viewer made an editor gains them. A
    poller without it was drawn before pollers said it."""
    drawn_for = request.GET.get("role")
    return drawn_for is not None and drawn_for != role


@require_GET
@htmx_login_required
def project_poll(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """What changed on the storyboard since ``?since=``: the changed cards, out of band, or
    the whole storyboard when scenes were added, deleted or moved (a card swap needs a card
    already on the page, and a deleted or moved scene leaves nothing to swap).

    An open page always polls: every FLOWSITE_PAGE_POLL_SECONDS while takes are in flight, every
    FLOWSITE_IDLE_POLL_SECONDS otherwise, so a teammate's new scene or Generate reaches an idle
    page too. Its poller says which of the two it is in (``live``). One request per page and
    interval whatever the number of cards. Every poll is signed in and re-checks membership, so
    signing out or being removed from the project stops it at once. The answer is 204 (htmx
    swaps nothing, the page keeps its cadence) when nothing changed and the page's mode is
    still right: the session, the user, and one query that checks membership and asks "did
    anything change, is anything in flight?". Anything else (a change, or takes starting or
    ending without one) sends the cards with a new poller in the right mode.
    """
    answered_at = timezone.now()
    since = decode_since(request.GET.get("since"))
    page_live = page_is_live(request)
    state = get_poll_state_for_user(request, uuid, since)
    if page_role_changed(request, state.role):
        # Buttons, links and Generate all all depend on the role: the page is drawn again.
        role = Membership.Role(state.role).label.lower()
        messages.info(request, f"Your role on this project is now {role}.")
        return HttpResponseClientRefresh()
    if not state.changed and state.in_flight == page_live:
        return HttpResponse(status=204)
    # The newest take rides along, read before the cards: every take up to it is committed,
    # so it is on a card sent now or on one the page already shows, and Generate all may count
    # it as seen.
    project, membership = get_project_for_user(
        request,
        uuid,
        newest_take=Subquery(
            Generation.objects.filter(project=OuterRef("project")).order_by("-pk").values("pk")[:1]
        ),
        has_later_accounts=later_accounts_exist(),
        account_granted=first_account_granted(),
    )
    live = state.in_flight
    newest = since
    if not state.changed:
        # Takes started or ended since the page's last answer, yet nothing is newer than its
        # token. Either a worker forgot to say so, or a change committed just after a later
        # one (its timestamp fell behind the token): re-send the cards touched shortly before
        # the token, once, with a poller in the other mode (a page whose last take finished
        # polls slowly from now on).
        since = since - timedelta(seconds=max(10, 3 * settings.FLOWSITE_PAGE_POLL_SECONDS))

    # A page without a token gets every card anyway; it needs the whole list only when the list
    # itself changed after what the page has seen.
    restructured = (
        since is not None and project.scenes_changed is not None and project.scenes_changed > since
    )
    everything = since is None or restructured
    queryset = project.scenes.all()
    if not everything:
        queryset = queryset.filter(
            Q(updated__gt=since)
            | Q(pk__in=project.generations.filter(updated__gt=since).values("scene_id"))
        )
    sent_scenes = storyboard_scenes(project, queryset)
    if state.changed:
        # Every scene or take newer than the token is on a card sent now, so the newest change
        # among these cards (and the list's own, when the whole list is sent) is the newest.
        newest = newest_change(
            sent_scenes, project.scenes_changed if restructured else None, newest
        )
    generate_all = {}
    if not membership.can_edit:
        if restructured:
            # Archived since the page was drawn (archiving marks the list changed): its
            # Generate all goes with the cards' buttons.
            generate_all = {"generate_all_oob": True}
    elif _generate_all_may_differ(sent_scenes, since, everything):
        # Priced from every scene: the whole list when it was sent, else the few columns a
        # price needs.
        scenes = (
            sent_scenes
            if everything
            else list(project.scenes.only(*Scene.PRICED_FIELDS, *Scene.SETTINGS_FIELDS))
        )
        generate_all = {
            "generate_all_oob": True,
            "has_scenes": bool(scenes),
            "last_generation": membership.newest_take or 0,
            "generate_all_cost": generate_all_cost(project, membership, scenes),
            "generate_all_seen": Scene.storyboard_token(scenes),
        }
    extra = (
        {"scenes": sent_scenes, "storyboard_oob": True}
        if restructured
        else {"changed_scenes": sent_scenes, "card_oob": True}
    )
    ctx = card_context(
        project,
        membership,
        since=page_token(newest, answered_at),
        live=live,
        # The credits Flow reported with a finished clip, and the live region's news.
        account_oob=True,
        project_accounts=project_account_states(
            project, membership.has_later_accounts, membership.account_granted
        ),
        announce_oob=True,
        **extra,
        **generate_all,
    )
    return render(request, f"{TEMPLATE}#poll-response", ctx)


GENERATE_ALL_CHANGED = (
    "Scenes were changed, added or deleted since this page showed them (a teammate's edit), so "
    "nothing was generated. Here is the storyboard as it is now, with what Generate all would "
    "spend; press it again if you still want every scene made."
)


@require_POST
@login_required
def project_generate_all(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Generate every scene that can be; say which were skipped and why.

    The form carries the newest take the person had seen: if takes appeared since (a second
    click, a teammate), nothing is generated, so one click never pays twice. It carries the
    scenes' settings as the page showed them too (``Scene.storyboard_token``): a teammate's
    edit since (more takes, a dearer model, another prompt) would spend more than the price
    the confirm said, or on what nobody looked at, so nothing is generated either; a page
    without it (drawn before it was sent) is refused the same way.
    """
    project, _ = get_project_for_user(request, uuid, Role.EDITOR)
    seen = request.POST.get("last_generation", "")
    with transaction.atomic():
        newest = Generation.objects.filter(project=project).aggregate(newest=Max("pk"))
        if not seen.isdigit() or int(seen) != (newest["newest"] or 0):
            messages.error(
                request,
                "New takes appeared since this page was loaded (a second click, or a "
                "teammate), so nothing was generated. Check the storyboard, then press "
                "Generate all again if you still want more.",
            )
            return redirect("project-detail", uuid=project.uuid)
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the outer join
        # to start_image; only the scenes need locking.
        scenes = list(project.scenes.select_for_update(of=("self",)).select_related("start_image"))
        if request.POST.get("seen_settings") != Scene.storyboard_token(scenes):
            messages.error(request, GENERATE_ALL_CHANGED)
            return redirect("project-detail", uuid=project.uuid)
        try:
            generated, skipped = work.generate_scenes(project, scenes, request.user)
        except CannotGenerate as refusal:
            messages.error(request, f"Nothing was generated: {refusal}")
            return redirect("project-detail", uuid=project.uuid)
    if generated:
        count = sum(scene.takes for scene in generated)
        messages.success(
            request,
            f"Queued {count} take{'s' if count != 1 else ''} for "
            f"{len(generated)} scene{'s' if len(generated) != 1 else ''}.",
        )
    for scene, problem in skipped:
        messages.warning(request, f"{scene} was not generated: {problem}")
    if not generated and not skipped:
        messages.info(request, "The storyboard has no scenes yet; add one first.")
    return redirect("project-detail", uuid=project.uuid)


# --- projects and members -----------------------------------------------------------------


@require_GET
@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    """The person's projects, each with its newest poster and its members, in three queries
    however many projects (archived ones only with ``?archived=1``)."""
    show_archived = request.GET.get("archived") == "1"
    mine = Membership.objects.filter(user_id=request.user.pk)
    memberships = (
        mine.select_related("project__account")
        .annotate(
            scene_count=Count("project__scenes", distinct=True),
            poster_take=Subquery(
                Generation.objects.filter(
                    project=OuterRef("project"), status=Generation.Status.READY
                )
                .exclude(poster="")
                .order_by("-finished_at", "-pk")
                .values("uuid")[:1]
            ),
            # The unit its budget counts in: its account's (Flow's credits without one).
            unit=Case(
                When(project__account__kind=FlowAccount.Kind.VERTEX, then=Value(COST_USD)),
                default=Value(COST_CREDITS),
            ),
        )
        .annotate(
            # What the Spend page shows and the budget check counts: takes and upscales,
            # with what deleted ones spent.
            month_spent=month_spent(OuterRef("project"), OuterRef("unit")),
        )
        .prefetch_related(
            Prefetch(
                "project__memberships",
                queryset=Membership.objects.select_related("user").order_by("user__username"),
                to_attr="member_list",
            )
        )
        .order_by("project__name")
    )
    if not show_archived:
        memberships = memberships.filter(project__archived_at__isnull=True)
    archived = mine.filter(project__archived_at__isnull=False).count()
    return render(
        request,
        "generations/project_list.html",
        {"memberships": memberships, "show_archived": show_archived, "archived_count": archived},
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        project = form.save(request.user)
        messages.success(request, f"Created {project}. Add its first scene.")
        return redirect("project-detail", uuid=project.uuid)
    return render(request, "generations/project_new.html", {"form": form})


@require_http_methods(["GET", "POST"])
@login_required
def project_members(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Everyone sees who is on the project; only owners add, re-role or remove people."""
    project, membership = get_project_for_user(
        request, uuid, Role.OWNER if request.method == "POST" else None
    )
    add_form = MemberAddForm(project)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "add":
            add_form = MemberAddForm(project, request.POST)
            if add_form.is_valid():
                user = add_form.cleaned_data["username"]
                added = project.add_member(user, add_form.cleaned_data["role"])
                AuditEvent.member_added(added, request.user)
                messages.success(request, f"Added {user} as {add_form.cleaned_data['role']}.")
                return redirect("project-members", uuid=project.uuid)
        elif action in ("role", "remove"):
            error = _change_member(request, project, action)
            if error:
                messages.error(request, error)
            else:
                still_member = Membership.objects.filter(
                    project=project, user_id=request.user.pk
                ).first()
                if still_member is None:
                    return redirect("project-list")
                if not still_member.can_manage:
                    return redirect("project-detail", uuid=project.uuid)
            return redirect("project-members", uuid=project.uuid)
        else:
            messages.error(request, "That form asked for nothing Flowsite knows how to do.")
            return redirect("project-members", uuid=project.uuid)

    members = project.memberships.select_related("user").order_by("user__username")
    return render(
        request,
        "generations/members.html",
        {
            "project": project,
            "membership": membership,
            "members": members,
            "add_form": add_form,
            "roles": Membership.Role.choices,
        },
    )


def _change_member(request: HttpRequest, project: Project, action: str) -> str:
    """Change a member's role or remove them; the reason in words when refused, else ""."""
    username = request.POST.get("username", "")
    new_role = request.POST.get("role", "")
    if action == "role" and new_role not in Membership.Role.values:
        return "Choose owner, editor or viewer."
    with transaction.atomic():
        # Locked with the other owners so two owners demoting each other cannot both win.
        list(project.memberships.select_for_update().filter(role=Membership.Role.OWNER))
        target = project.memberships.select_related("user").filter(user__username=username).first()
        if target is None:
            return f"{username or 'That person'} is not a member of {project}."
        demoted = target.role == Membership.Role.OWNER and (
            action == "remove" or new_role != Membership.Role.OWNER
        )
        refusal = project.last_owner_words([target]) if demoted else ""
        if refusal:
            return refusal
        # An owner's grants let the project spend: losing them is allowed, but said at once,
        # not first at the next Generate.
        granted = project.granted_accounts() if demoted else set()
        if action == "remove":
            target.delete()
            AuditEvent.member_removed(target, request.user)
            said = f"Removed {target.user} from {project}."
        else:
            old_role, target.role = target.role, new_role
            target.save(update_fields=["role"])
            AuditEvent.member_role(target, old_role, request.user)
            said = f"{target.user} is now {target.get_role_display().lower()}."
        lost = project.lost_accounts_words(
            granted, target.user, request.user, removed=action == "remove"
        )
    if lost:
        messages.warning(request, f"{said} {lost}")
    else:
        messages.success(request, said)
    return ""
