from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from generations import reset_throttle, throttle

# Both sign-in doors ask the throttle before any password is checked.
admin.site.login_form = throttle.ThrottledAdminAuthenticationForm

urlpatterns = [
    path("accounts/login/", throttle.sign_in, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's own password reset by email (templates/registration/password_reset_*.html),
    # throttled per address typed and per client address.
    path("accounts/password-reset/", reset_throttle.password_reset, name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("admin/login/", throttle.answer_429_when_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", include("generations.urls")),
]
