from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = request.user.memberships.select_related("project")
    return render(request, "generations/project_list.html", {"memberships": projects})
