"""`make bench-jit`: the JIT gateway against a bare Django view and a naive PostgreSQL design.

Installed only by `config.settings.bench`. See docs/benchmarks.md.
"""
