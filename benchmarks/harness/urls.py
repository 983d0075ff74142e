"""Flowsite's URLs plus the yardstick every benchmark compares against: a bare "hello" view.

The hello view runs through the same middleware stack (sessions, auth, CSRF, messages, htmx)
but touches neither the database nor a template, so "N× hello" is the cost a view adds on top
of Django itself.

``signed_in_hello`` is the floor of any page behind a sign-in: the same, plus reading the
session and the user (two queries), which every Flowsite view pays before its own work.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


@login_required
def signed_in_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.pk}".encode(), content_type="text/plain")


urlpatterns = [
    path("bench/hello/", hello, name="bench-hello"),
    path("bench/signed-in-hello/", signed_in_hello, name="bench-signed-in-hello"),
    path("", include("flowsite.urls")),
]
