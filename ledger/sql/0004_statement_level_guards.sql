-- The balance and currency checks of 0002, set-based: once per INSERT or COPY statement over
-- the rows it added (a transition table), instead of once per entry row at COMMIT.
-- Why: a clearing file posts a million transactions; a per-row deferred trigger runs a
-- million GROUP BY queries at commit. One statement now checks a whole batch with two joins.
-- The rule it enforces is unchanged, and stricter in time: every statement that adds entries
-- must leave each of their transactions balanced (post_transaction and LedgerBatch insert a
-- transaction's entries in one statement).
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS ledger_entry_currency ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS ledger_check_balanced();
DROP FUNCTION IF EXISTS ledger_check_entry_currency();

CREATE FUNCTION ledger_check_inserted_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad_transaction bigint;
  bad_currency text;
BEGIN
  SELECT e.currency_code INTO bad_currency
    FROM new_entries e JOIN ledger_account a ON a.id = e.account_id
   WHERE a.currency_code <> e.currency_code
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'entry in % on an account in another currency', bad_currency
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT e.transaction_id INTO bad_transaction
    FROM ledger_ledgerentry e
   WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
   GROUP BY e.transaction_id, e.currency_code
  HAVING SUM(e.amount_minor) <> 0
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % does not balance', bad_transaction
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_checked AFTER INSERT ON ledger_ledgerentry
  REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_inserted_entries();
