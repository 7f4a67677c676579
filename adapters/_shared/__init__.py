"""Code every adapter may use: resilience (timeouts, retries, circuit breaker, concurrency cap)."""
