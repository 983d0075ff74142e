import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowsite.settings")

application = get_wsgi_application()

# gunicorn runs no system checks of its own; refuse to serve when Flowsite's are failing (for
# instance production without FLOWSITE_FERNET_KEYS) rather than fail on the first secret.
from django.core import checks  # noqa: E402

_errors = [e for e in checks.run_checks(tags=["flowsite"]) if e.is_serious()]
if _errors:
    raise SystemExit("\n".join(str(e) for e in _errors))
