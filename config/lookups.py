"""`field__any=[...]`: `field = ANY(%s)`, the whole list as one array parameter.

`field__in=[...]` writes one placeholder per value. For the few thousand keys of a clearing
batch, Django builds and prepares each one and psycopg then splits a query of thousands of
placeholders and adapts every value: about a second of a 5,000-line batch, where one array
parameter costs milliseconds. PostgreSQL plans `= ANY(array)` on an index as it plans `IN`.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignObject, Lookup
from django.db.models.sql.compiler import SQLCompiler


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False  # the list goes to the database as it is, not through the field

    def get_db_prep_lookup(self, value: Any, connection: BaseDatabaseWrapper) -> tuple:
        return "%s", [list(value)]

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]


def register() -> None:
    """Called once from `ledger.apps.LedgerConfig.ready` (every app's fields get it)."""
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)  # relations keep lookups of their own
