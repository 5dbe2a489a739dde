"""Database guards for the ledger: balanced transactions, immutable entries (see the SQL)."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=(SQL / "0002_ledger_guards.sql").read_text(),
            reverse_sql=(SQL / "0002_ledger_guards.reverse.sql").read_text(),
        )
    ]
