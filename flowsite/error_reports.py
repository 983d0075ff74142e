"""What the DEBUG error page and error e-mails may show of the settings."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class FlowsiteExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's list of secret-looking names, plus those Flowsite's secrets go by.

    Django hides names with KEY, TOKEN, SECRET, PASS and the like, but not a session cookie
    (FLOW_EMULATOR_SESSION_COOKIE spends the emulator's, or a real, account), nor URLs that
    carry a password (DATABASE_URL, a cache's LOCATION, django-q's redis). Names are matched
    at every depth of a setting, dictionary keys included.
    """

    hidden_settings = re.compile(
        r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|COOKIE$|DATABASE_URL"
        r"|^LOCATION$|REDIS",
        flags=re.IGNORECASE,
    )
