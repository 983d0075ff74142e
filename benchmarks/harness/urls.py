"""Flowsite's URLs plus the yardstick every benchmark compares against: a bare "hello" view.

The hello view runs through the same middleware stack (sessions, auth, CSRF, messages, htmx)
but touches neither the database nor a template, so "N× hello" is the cost a view adds on top
of Django itself.

``signed_in_hello`` is the floor of any page behind a sign-in: the same, plus reading the
session and the user (two queries), which every Flowsite view pays before its own work.

``member_hello`` adds the least a project's view can do after that: one query asking whether
the user is a member of the project named by the URL (the membership joined to the project,
as every access-checking lookup does), answering 204. It is the floor of the page poll, whose
one query asks that and whether anything changed.
"""

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import include, path

from generations.models import Membership


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


@login_required
def signed_in_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.pk}".encode(), content_type="text/plain")


@login_required
def member_hello(request: HttpRequest, uuid: UUID) -> HttpResponse:
    member = Membership.objects.filter(project__uuid=uuid, user_id=request.user.pk)
    if not member.values("role").first():
        raise Http404
    return HttpResponse(status=204)


urlpatterns = [
    path("bench/hello/", hello, name="bench-hello"),
    path("bench/signed-in-hello/", signed_in_hello, name="bench-signed-in-hello"),
    path("bench/member-hello/<uuid:uuid>/", member_hello, name="bench-member-hello"),
    path("", include("flowsite.urls")),
]
