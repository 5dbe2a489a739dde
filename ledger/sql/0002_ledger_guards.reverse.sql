DROP TRIGGER IF EXISTS ledger_entry_currency ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS ledger_transaction_immutable ON ledger_ledgertransaction;
DROP TRIGGER IF EXISTS ledger_entry_immutable ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS ledger_check_entry_currency();
DROP FUNCTION IF EXISTS ledger_refuse_change();
DROP FUNCTION IF EXISTS ledger_check_balanced();
