from django.apps import AppConfig


class JitConfig(AppConfig):
    """The JIT funding gateway Marqeta calls at every swipe."""

    name = "jit"
    verbose_name = "JIT gateway"

    def ready(self) -> None:
        from jit import receivers  # noqa: F401 - connects the cache-sync signal receivers
