-- One JIT funding message, decided atomically for one cardholder partition.
--
-- Everything the decision touches shares the partition hash tag {pN}, so this script runs
-- unchanged on Redis Cluster. Amounts are integer minor units (Lua numbers are doubles,
-- exact to 2^53; nothing here divides money).
--
-- KEYS: 1 acct  2 card  3 idem  4 hold (this message)  5 root hold (the chain's first message)
--       6 user velocity  7 card velocity  8 card burst zset  9 card amount stats
--       10 outbox stream  11 applied marker (ledger key of an advice)
-- ARGV: 1 jit token  2 fingerprint  3 op (auth|verify|inquiry|deny|standin|release|clear|
--       force|credit|advice)
--       4 amount_minor  5 signal bits (1 CVV mismatch, 2 AVS mismatch, 4 card not present)
--       6 mcc  7 country (alpha-3)  8 channel (CARD_PRESENT|ECOMMERCE|ATM)  9 currency
--       10 idempotency ttl seconds  11 is_final (clear: "1"/"0")  12 event metadata (JSON)
--       13 reason code for op deny (a refusal decided before the script, e.g. OCT disabled)
-- Returns: {outcome, decline_reason, reason_code, available, rule_hits, extra}
--   outcome: approved | declined | replay | conflict | unknown_card | unknown_account

local jit_token, fingerprint, op = ARGV[1], ARGV[2], ARGV[3]

-- tostring() and cjson print numbers with 14 digits; money needs every digit.
local function int(x) return string.format('%d', x) end
local amount = tonumber(ARGV[4])
local signals = tonumber(ARGV[5])
local mcc, country, channel, currency = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

-- 1. Idempotency: a replay returns the first answer, a decline included.
local first = redis.call('GET', KEYS[3])
if first then
  local stored = cjson.decode(first)
  if stored.fp ~= fingerprint then
    return {'conflict', '', 'IDEMPOTENCY_CONFLICT', '', '', ''}
  end
  return {'replay', stored.dr, stored.rc, stored.av, stored.rh, stored.x or ''}
end

local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)

local card = redis.call('HMGET', KEYS[2], 'state', 'holder_status', 'currency', 'controls',
                        'fraud', 'tz')
if not card[1] then
  return {'unknown_card', '', 'CARD_NOT_IN_CACHE', '', '', ''}
end
local available = tonumber(redis.call('HGET', KEYS[1], 'available'))
if not available then
  return {'unknown_account', '', 'ACCOUNT_NOT_IN_CACHE', '', '', ''}
end

local function bit_set(value, bit)
  return math.floor(value / bit) % 2 == 1
end

local function contains(list, value)
  if not list then return false end
  for _, item in ipairs(list) do
    if item == value then return true end
  end
  return false
end

-- Calendar windows in the program's timezone: the offset table comes from the card record.
local function local_days()
  local offset = 0
  for _, period in ipairs(cjson.decode(card[6] or '[]')) do
    if period[1] * 1000 <= now_ms then offset = period[2] end
  end
  return math.floor((math.floor(now_ms / 1000) + offset) / 86400)
end

local function month_of(days)  -- civil_from_days (H. Hinnant): days since 1970-01-01 -> y*12+m
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return year * 12 + month
end

local days = local_days()
local windows = {day = days, week = math.floor((days + 3) / 7), month = month_of(days),
                 lifetime = 0}
local prefix = {day = 'd', week = 'w', month = 'm', lifetime = 'l'}

local function usage(counter_key, window)
  local p = prefix[window]
  local fields = redis.call('HMGET', counter_key, p .. '_id', p .. '_amt', p .. '_cnt')
  if tonumber(fields[1]) ~= windows[window] then return 0, 0 end
  return tonumber(fields[2]) or 0, tonumber(fields[3]) or 0
end

local function bump_usage(counter_key)
  for window, id in pairs(windows) do
    local p = prefix[window]
    local used, count = usage(counter_key, window)
    redis.call('HSET', counter_key, p .. '_id', id, p .. '_amt', used + amount,
               p .. '_cnt', count + 1)
  end
end

local answer = {approved = true, dr = '', rc = 'APPROVED'}
local rule_hits = {}
local limits_left = {}

local function decline(decline_reason, reason_code)
  if answer.approved then
    answer = {approved = false, dr = decline_reason, rc = reason_code}
  end
end

-- 2. Card and cardholder state.
local function check_state()
  if card[1] ~= 'ACTIVE' then decline('CARD_NOT_ACTIVE', 'CARD_' .. card[1]) end
  if card[2] ~= 'ACTIVE' then decline('CARDHOLDER_NOT_ACTIVE', 'CARDHOLDER_' .. card[2]) end
  if currency ~= '' and currency ~= card[3] then
    decline('TRANSACTION_NOT_PERMITTED', 'CURRENCY_MISMATCH')
  end
end

-- 3. Spend controls: the card record holds the strictest combination of every scope.
local function check_controls(controls)
  if controls.max_txn ~= cjson.null and controls.max_txn and amount > controls.max_txn then
    decline('AMOUNT_LIMIT_EXCEEDED', 'MAX_TRANSACTION_AMOUNT')
  end
  if controls.channels ~= cjson.null and controls.channels
     and not contains(controls.channels, channel) then
    decline('TRANSACTION_NOT_PERMITTED', 'CHANNEL_NOT_ALLOWED')
  end
  if contains(controls.mcc_block, mcc) then decline('TRANSACTION_NOT_PERMITTED', 'MCC_BLOCKED') end
  if controls.mcc_allow ~= cjson.null and controls.mcc_allow
     and not contains(controls.mcc_allow, mcc) then
    decline('TRANSACTION_NOT_PERMITTED', 'MCC_NOT_ALLOWED')
  end
  if contains(controls.country_block, country) then
    decline('TRANSACTION_NOT_PERMITTED', 'COUNTRY_BLOCKED')
  end
  for _, limit in ipairs(controls.limits or {}) do
    local key = limit.counter == 'user' and KEYS[6] or KEYS[7]
    local used, count = usage(key, limit.window)
    local window = string.upper(limit.window)
    local max_amount = (limit.max_amount ~= cjson.null and limit.max_amount) or nil
    local max_count = (limit.max_count ~= cjson.null and limit.max_count) or nil
    -- what support sees: each limit's room before this request and its maximum,
    -- "<id>=<amount left>/<max amount>/<count left>/<max count>" ("-" where no maximum)
    table.insert(limits_left, limit.id .. '='
                 .. (max_amount and int(max_amount - used) .. '/' .. int(max_amount) or '-/-')
                 .. '/' .. (max_count and int(max_count - count) .. '/' .. int(max_count) or '-/-'))
    if limit.max_amount ~= cjson.null and limit.max_amount and used + amount > limit.max_amount then
      decline('AMOUNT_LIMIT_EXCEEDED', 'VELOCITY_' .. window .. '_AMOUNT')
    end
    if limit.max_count ~= cjson.null and limit.max_count and count + 1 > limit.max_count then
      decline('TRANSACTION_COUNT_LIMIT_EXCEEDED', 'VELOCITY_' .. window .. '_COUNT')
    end
  end
end

-- 4. Fraud rules: shadow rules are evaluated and recorded, never decline.
local function rule_hit(rule)
  local kind, params = rule.kind, rule.params or {}
  if kind == 'cvv_mismatch' then return bit_set(signals, 1) end
  if kind == 'avs_mismatch' then return bit_set(signals, 2) end
  if kind == 'card_not_present' then return bit_set(signals, 4) end
  if kind == 'high_risk_mcc' then return contains(params.mccs, mcc) end
  if kind == 'foreign_country' then
    return country ~= '' and params.home_country ~= nil and country ~= params.home_country
  end
  if kind == 'amount_over' then return amount > (params.amount_minor or math.huge) end
  if kind == 'burst' then
    local since = now_ms - (params.seconds or 60) * 1000
    return redis.call('ZCOUNT', KEYS[8], since, '+inf') >= (params.count or math.huge)
  end
  if kind == 'amount_outlier' then
    local stats = redis.call('HMGET', KEYS[9], 'n', 'sum')
    local n, sum = tonumber(stats[1]) or 0, tonumber(stats[2]) or 0
    return n >= (params.min_history or 5) and amount * n > (params.multiple or 10) * sum
  end
  return false
end

local function check_fraud(rules)
  for _, rule in ipairs(rules) do
    if rule_hit(rule) then
      table.insert(rule_hits, rule.id .. ':' .. rule.mode .. ':' .. rule.action)
      if rule.mode == 'on' and rule.action == 'decline' then
        decline('SUSPECTED_FRAUD', 'FRAUD_' .. string.upper(rule.kind))
      end
    end
  end
end

-- 5. Advices Marqeta will not take back: apply to the cached balance, at most once.
local function release_from_chain(wanted)
  local remaining = tonumber(redis.call('HGET', KEYS[5], 'remaining')) or 0
  local released = math.min(wanted, remaining)
  if released > 0 then redis.call('HINCRBY', KEYS[5], 'remaining', -released) end
  return released
end

local extra = ''
local function apply_advice()
  if redis.call('SET', KEYS[11], jit_token, 'NX', 'EX', tonumber(ARGV[10])) == false then
    extra = 'already_applied'
    return
  end
  local delta = 0
  if op == 'release' then
    delta = release_from_chain(amount)
  elseif op == 'clear' then
    local from_hold = release_from_chain(amount)
    delta = -(amount - from_hold)
    if ARGV[11] == '1' then delta = delta + release_from_chain(math.huge) end
  elseif op == 'force' then
    delta = -amount
  elseif op == 'credit' then
    delta = amount
  end
  if delta ~= 0 then available = redis.call('HINCRBY', KEYS[1], 'available', delta) end
  extra = int(delta)
end

if op == 'auth' or op == 'verify' then
  check_state()
  if op == 'auth' then
    local controls = cjson.decode(card[4] or '{}')
    check_controls(controls)
    check_fraud(cjson.decode(card[5] or '[]'))
    if answer.approved and amount > available then decline('INSUFFICIENT_FUNDS', 'BALANCE') end
    redis.call('ZADD', KEYS[8], now_ms, jit_token)
    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now_ms - 3600000)
  end
  if answer.approved and op == 'auth' and amount > 0 then
    available = redis.call('HINCRBY', KEYS[1], 'available', -amount)
    redis.call('HSET', KEYS[4], 'amount', amount, 'remaining', amount, 'at', now_ms,
               'root', KEYS[5])
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[10]))  -- outlives any hold and its webhooks
    if KEYS[5] ~= KEYS[4] then redis.call('HINCRBY', KEYS[5], 'remaining', amount) end
    bump_usage(KEYS[6])
    bump_usage(KEYS[7])
    redis.call('HINCRBY', KEYS[9], 'n', 1)
    redis.call('HINCRBY', KEYS[9], 'sum', amount)
  end
elseif op == 'standin' then
  -- the network approved without us: hold it (it may overdraw; the ledger flags that)
  available = redis.call('HINCRBY', KEYS[1], 'available', -amount)
  redis.call('HSET', KEYS[4], 'amount', amount, 'remaining', amount, 'at', now_ms,
             'root', KEYS[5])
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[10]))
elseif op == 'deny' then
  decline('TRANSACTION_NOT_PERMITTED', ARGV[13])
elseif op == 'release' or op == 'clear' or op == 'force' or op == 'credit' then
  apply_advice()
end

local hits = table.concat(rule_hits, ',')
local outcome = answer.approved and 'approved' or 'declined'
redis.call('SET', KEYS[3], cjson.encode({fp = fingerprint, dr = answer.dr, rc = answer.rc,
           av = int(available), rh = hits, x = extra}), 'EX', tonumber(ARGV[10]))
redis.call('XADD', KEYS[10], '*', 'jit', jit_token, 'op', op, 'outcome', outcome,
           'amount', amount, 'decline', answer.dr, 'reason', answer.rc, 'rules', hits,
           'available', available, 'extra', extra, 'limits', table.concat(limits_left, ','),
           'decided_us', now_us, 'meta', ARGV[12])
return {outcome, answer.dr, answer.rc, int(available), hits, extra}
