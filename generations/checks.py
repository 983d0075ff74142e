from django.conf import settings
from django.core.checks import Error, register


@register("flowsite")
def fernet_keys_configured(app_configs, **kwargs):
    if settings.FLOWSITE_FERNET_KEYS:
        return []
    return [
        Error(
            "FLOWSITE_FERNET_KEYS is not set, so Flow tokens and session cookies cannot be "
            "stored encrypted.",
            # A key made for one command stores secrets the running app cannot read: the hint
            # must not send an operator of a `make run` install to make one.
            hint="Every process (web, worker and every manage.py command) must use the same "
            "FLOWSITE_FERNET_KEYS, or none can read the secrets another stored. Against a local "
            "`make run` install, run the command with DEBUG=1 as `make run` does (its key is "
            "derived from SECRET_KEY), not with a new key. For a new production install, "
            "generate one key with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())' and give that same value to every process.",
            id="flowsite.E001",
        )
    ]
