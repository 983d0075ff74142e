from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from generations import throttle

# Both sign-in doors ask the throttle before any password is checked.
admin.site.login_form = throttle.ThrottledAdminAuthenticationForm

urlpatterns = [
    path("accounts/login/", throttle.sign_in, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", throttle.answer_429_when_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", include("generations.urls")),
]
