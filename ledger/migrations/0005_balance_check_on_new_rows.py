"""The statement-level balance check over the statement's new rows alone (see the SQL)."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_statement_level_guards")]

    operations = [
        migrations.RunSQL(
            sql=(SQL / "0005_balance_check_on_new_rows.sql").read_text(),
            reverse_sql=(SQL / "0005_balance_check_on_new_rows.reverse.sql").read_text(),
        )
    ]
