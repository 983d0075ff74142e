"""Flowsite's own settings, plus the hello view's URLconf and static files without a manifest.

Everything else (database file, media folder, keys) comes from the environment the benchmark
sets before starting Django, exactly as in production.
"""

from flowsite.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.harness.urls"

# Pages render {% static %} without `collectstatic` (the manifest storage would need it);
# WhiteNoise still serves whatever is in STATIC_ROOT, which the media benchmark relies on.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGGING = {
    **LOGGING,  # noqa: F405
    "root": {"handlers": ["console"], "level": "WARNING"},
}
