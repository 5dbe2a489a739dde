-- PostgreSQL has the last word on the ledger's invariants, even when Python is bypassed.

-- 1. Every transaction balances per currency: checked at COMMIT (deferred), so the entries of
--    one posting can be inserted one by one.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM ledger_ledgerentry WHERE transaction_id = NEW.transaction_id
             GROUP BY currency_code HAVING SUM(amount_minor) <> 0) THEN
    RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_ledgerentry
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- 2. Posted entries and transactions are immutable: corrections are new entries.
--    TRUNCATE stays allowed, because test flushes use it.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'posted ledger entries are immutable (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entry_immutable BEFORE UPDATE OR DELETE ON ledger_ledgerentry
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transaction_immutable BEFORE UPDATE OR DELETE ON ledger_ledgertransaction
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- 3. An entry is in its account's currency.
CREATE FUNCTION ledger_check_entry_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ledger_account
                 WHERE id = NEW.account_id AND currency_code = NEW.currency_code) THEN
    RAISE EXCEPTION 'entry in % on an account in another currency', NEW.currency_code
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER ledger_entry_currency BEFORE INSERT ON ledger_ledgerentry
  FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_currency();
