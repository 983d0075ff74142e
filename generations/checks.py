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
            hint="Generate a key with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())' and set FLOWSITE_FERNET_KEYS to it.",
            id="flowsite.E001",
        )
    ]
