"""Time kb.redaction.redact on ordinary and adversarial texts: median and p95 of repeated runs (asserts nothing)."""

from __future__ import annotations

import statistics
import time

from kb.redaction import redact

CASES = {
    "query, 60 chars, one card": "customer says card 4242 4242 4242 4242 exp 09/27 was charged twice",
    "query, 2,000 chars of digits and separators": ("4 2-4." * 400)[:2000],
    "200 KB prose with numbers": (
        "The customer paid 12.50 on 2026-09-01, ticket #4471123; call 0800 123 4567. " * 2600
    )[:200_000],
    "200 KB of cards with expiry and cvv": ("4242 4242 4242 4242 exp 09/27 cvv 123. " * 5200)[:200_000],
    "200 KB of one-digit groups (worst case)": "1 " * 100_000,
    "200 KB of digits, no separators": "4" * 200_000,
    "200 KB of zero-width-split digits": "4\u200b" * 100_000,
}


def main(runs: int = 15) -> None:
    """Print the median and p95 time of redact() per case."""
    for name, text in CASES.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            redact(text)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:48s} median {statistics.median(times):8.2f} ms   p95 {p95:8.2f} ms")


if __name__ == "__main__":
    main()
