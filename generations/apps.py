from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Flowsite"

    def ready(self) -> None:
        # Imported for their side effects: the system checks register themselves, and the
        # throttle counts failed sign-ins from any login form.
        from . import checks, throttle  # noqa: F401
