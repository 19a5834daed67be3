"""Prometheus metrics in the text exposition format, built from what the service already knows.

No client library: the format is a few lines of text, and the values come from the call manager, the
detector hub and one grouped query on the calls table.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

# Pre-answer decision latency buckets, in seconds (Prometheus' base unit).
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    samples: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.samples += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out += [f"{name}_sum {self.total!r}", f"{name}_count {self.samples}"]
        return out


class CallMetrics:
    """What the call path reports as it goes; the rest is read when /metrics is scraped."""

    def __init__(self) -> None:
        self.decision_latency = Histogram()
        self.rejections: Counter[str] = Counter()  # screening's refusals and spam verdicts, by reason

    def observe_decision_ms(self, latency_ms: float) -> None:
        self.decision_latency.observe(latency_ms / 1000)

    def count_rejection(self, reason: str) -> None:
        self.rejections[reason] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(*, status: dict[str, Any], calls_by_disposition: dict[str, int], decisions: dict[str, int],
           metrics: CallMetrics, detector_streams: int, detector_cpu_s: float, extra: Iterable[str] = ()) -> str:
    """``extra``: finished metric families from features that own them (the outbox, pools)."""
    lines: list[str] = []
    lines += _family("ringpool_active_calls", "gauge", "Calls being handled now.",
                     [f"ringpool_active_calls {status.get('active_calls', 0)}"])
    lines += _family("ringpool_calls_total", "counter", "Finished calls by disposition (from the call records).",
                     [f'ringpool_calls_total{{disposition="{_escape(d)}"}} {n}'
                      for d, n in sorted(calls_by_disposition.items())])
    lines += _family("ringpool_decisions_total", "counter", "Pre-answer decisions by action.",
                     [f'ringpool_decisions_total{{action="{_escape(a)}"}} {n}' for a, n in sorted(decisions.items())])
    lines += _family("ringpool_decision_latency_seconds", "histogram",
                     "StasisStart's own timestamp to the app's first command, since this process started.",
                     metrics.decision_latency.lines("ringpool_decision_latency_seconds"))
    lines += _family("ringpool_screening_rejections_total", "counter",
                     "Calls refused before answer (quarantine, a block rule by kind, a red score, a number not in "
                     "use) or found spam after it (challenge failed, dialer tone, score 2, announcement, agent), "
                     "since this process started.",
                     [f'ringpool_screening_rejections_total{{reason="{_escape(r)}"}} {n}'
                      for r, n in sorted(metrics.rejections.items())])
    lines += _family("ringpool_ari_connected", "gauge", "1 while the ARI events WebSocket is connected.",
                     [f"ringpool_ari_connected {int(bool(status.get('ari_connected')))}"])
    lines += _family("ringpool_ari_reconnects_total", "counter", "Reconnections of the ARI events WebSocket.",
                     [f"ringpool_ari_reconnects_total {status.get('ari_reconnects', 0)}"])
    lines += _family("ringpool_database_ok", "gauge", "1 while the database answers.",
                     [f"ringpool_database_ok {int(bool(status.get('database_ok')))}"])
    lines += _family("ringpool_detector_streams", "gauge", "Audio streams in the detector hub now.",
                     [f"ringpool_detector_streams {detector_streams}"])
    lines += _family("ringpool_detector_cpu_seconds_total", "counter", "CPU time the detector hub has used.",
                     [f"ringpool_detector_cpu_seconds_total {detector_cpu_s!r}"])
    lines += list(extra)
    return "\n".join(lines) + "\n"


def pool_lines(pools: list[dict[str, Any]], leases: int, overflows: int) -> list[str]:
    """Pool utilisation and overflow: the signal that a pool is too small."""
    return [
        *_family("ringpool_pool_numbers", "gauge", "Numbers in each pool by state.",
                 [f'ringpool_pool_numbers{{pool="{_escape(p["name"])}",state="{_escape(state)}"}} {n}'
                  for p in pools for state, n in sorted((p.get("numbers") or {}).items())]),
        *_family("ringpool_pool_utilisation", "gauge", "Leased numbers over the pool's maximum size.",
                 [f'ringpool_pool_utilisation{{pool="{_escape(p["name"])}"}} {p["utilisation"]}'
                  for p in pools if p.get("utilisation") is not None]),
        *_family("ringpool_leases_total", "counter", "Lease requests answered since start.",
                 [f"ringpool_leases_total {leases}"]),
        *_family("ringpool_pool_overflow_total", "counter", "Overflow numbers handed out since start.",
                 [f"ringpool_pool_overflow_total {overflows}"]),
    ]
