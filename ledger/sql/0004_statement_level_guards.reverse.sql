DROP TRIGGER IF EXISTS ledger_entries_checked ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS ledger_check_inserted_entries();
