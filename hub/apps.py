from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Adapter registry"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)
