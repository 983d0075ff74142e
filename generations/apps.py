from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Flowsite"

    def ready(self) -> None:
        # Imported for their side effects: the system checks register themselves, the
        # throttle counts failed sign-ins from any login form, and the gallery's version is
        # bumped by every model change it shows; start images nothing uses are removed.
        from . import checks, cleanup, signals, throttle  # noqa: F401
