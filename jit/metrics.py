"""Prometheus metrics of the gateway (served at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

DECISION_SECONDS = Histogram(
    "jit_decision_seconds",
    "Time from request received to answer built",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
DECISIONS = Counter(
    "jit_decisions_total", "JIT answers by outcome and reason", ["outcome", "reason"]
)
FALLBACK_ANSWERS = Counter(
    "jit_fallback_answers_total", "Answers from the stand-in policy", ["outcome"]
)
BREAKER_OPEN = Gauge(
    "jit_breaker_open", "1 while a web process's Redis breaker is open", multiprocess_mode="livemax"
)
CACHE_PUSHES_PENDING = Gauge(
    "jit_cache_pushes_pending",
    "Ledger changes whose cache moves Redis has not taken yet (jit.pushes)",
    multiprocess_mode="livemax",
)
OUTBOX_LAG = Gauge(
    "jit_outbox_pending_events",
    "Decision events not yet written to the ledger",
    multiprocess_mode="livemax",
)
