"""The reliability suite (issue 7): faults and sustained load against a private, complete stack.

Every test here starts real processes (PostgreSQL, Redis, gunicorn, ledger writers, a Celery
worker) of its own, on free ports under a temporary directory, and never touches the shared
development servers. See docs/reliability.md.
"""
