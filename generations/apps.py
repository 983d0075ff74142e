from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Flowsite"

    def ready(self) -> None:
        # Imported for their side effects: the system checks register themselves, the
        # throttle counts failed sign-ins from any login form, and start images nothing uses
        # are removed.
        from . import checks, cleanup, throttle  # noqa: F401
