from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Flowsite"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
