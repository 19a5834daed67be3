"""The Prometheus text: well-formed families, cumulative histogram buckets, escaped labels."""

from __future__ import annotations

import re

from ari_app.metrics import CallMetrics, render

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="(?:[^"\\]|\\.)*"\})? -?[0-9.e+-]+$|^# (HELP|TYPE) [a-z_]+ .+$')


def text(**overrides) -> str:
    metrics = CallMetrics()
    for ms in (0.5, 3.0, 3.5, 40.0, 5000.0):
        metrics.observe_decision_ms(ms)
    args = dict(status={"active_calls": 2, "ari_connected": True, "ari_reconnects": 3, "database_ok": True},
                calls_by_disposition={"completed": 7, "rejected": 2}, decisions={"proceed": 8, "reject": 2},
                metrics=metrics, detector_streams=1, detector_cpu_s=0.25) | overrides
    return render(**args)


def test_every_line_is_well_formed() -> None:
    for line in text().splitlines():
        assert SAMPLE.match(line), line


def test_values() -> None:
    out = text()
    assert 'ringpool_calls_total{disposition="completed"} 7' in out
    assert "ringpool_active_calls 2" in out and "ringpool_ari_connected 1" in out
    assert "ringpool_ari_reconnects_total 3" in out


def test_histogram_buckets_are_cumulative() -> None:
    out = text()
    buckets = re.findall(r'ringpool_decision_latency_seconds_bucket\{le="([^"]+)"\} (\d+)', out)
    counts = [int(n) for _, n in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", "5")
    assert dict(buckets)["0.001"] == "1" and dict(buckets)["0.005"] == "3" and dict(buckets)["0.05"] == "4"
    assert "ringpool_decision_latency_seconds_count 5" in out


def test_label_values_are_escaped() -> None:
    out = text(calls_by_disposition={'odd"\\\nvalue': 1})
    assert 'disposition="odd\\"\\\\\\nvalue"' in out


def test_screening_rejections_by_reason() -> None:
    metrics = CallMetrics()
    for reason in ("quarantine", "block_number", "block_number", "challenge_failed"):
        metrics.count_rejection(reason)
    text = render(status={}, calls_by_disposition={}, decisions={}, metrics=metrics, detector_streams=0,
                  detector_cpu_s=0.0)
    assert 'ringpool_screening_rejections_total{reason="block_number"} 2' in text
    assert 'ringpool_screening_rejections_total{reason="quarantine"} 1' in text
    assert "# TYPE ringpool_screening_rejections_total counter" in text
