CREATE OR REPLACE FUNCTION ledger_check_inserted_entries() RETURNS trigger LANGUAGE plpgsql AS $$
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
