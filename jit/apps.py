from django.apps import AppConfig


class JitConfig(AppConfig):
    """The JIT funding gateway Marqeta calls at every swipe."""

    name = "jit"
    verbose_name = "JIT gateway"
