"""The entry balance and currency checks, once per statement instead of once per row."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_lookup_indexes")]

    operations = [
        migrations.RunSQL(
            sql=(SQL / "0004_statement_level_guards.sql").read_text(),
            reverse_sql=(SQL / "0004_statement_level_guards.reverse.sql").read_text(),
        )
    ]
