"""Worker metrics in the Prometheus text format (no client library needed).

Counters (events by outcome, dead letters by reason, segment changes), per-step time,
an event-to-profile latency histogram, and gauges the worker refreshes (lag, pending,
events/s). :func:`serve_metrics` exposes them on ``/metrics``.
"""

from __future__ import annotations

import bisect
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LATENCY_BUCKETS", "PipelineMetrics", "serve_metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the event-to-profile latency histogram."""


class PipelineMetrics:
    """Thread-safe counters of one pipeline.

    Examples
    --------
    >>> m = PipelineMetrics()
    >>> m.count_event("processed")
    >>> m.events["processed"]
    1
    >>> "chatpersona_stream_events_total" in m.render()
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[str, int] = {}
        self.dead_letters: dict[str, int] = {}
        self.step_seconds: dict[str, float] = {}
        self.step_events: dict[str, int] = {}
        self.segment_changes = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.gauges: dict[str, float] = {}
        self._rate_window: list[tuple[float, int]] = []

    def count_event(self, status: str, n: int = 1) -> None:
        """Count ``n`` events that ended as ``status`` (processed, duplicate, rejected)."""
        with self._lock:
            self.events[status] = self.events.get(status, 0) + n

    def count_dead_letter(self, reason: str) -> None:
        """Count one dead-lettered message."""
        with self._lock:
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def time_step(self, step: str, seconds: float, events: int) -> None:
        """Add the time one step spent on ``events`` events."""
        with self._lock:
            self.step_seconds[step] = self.step_seconds.get(step, 0.0) + seconds
            self.step_events[step] = self.step_events.get(step, 0) + events

    def observe_latency(self, seconds: float) -> None:
        """Record one event-to-profile latency."""
        with self._lock:
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds

    def count_segment_change(self) -> None:
        """Count one emitted ``segment_changed``."""
        with self._lock:
            self.segment_changes += 1

    def set_gauge(self, name: str, value: float) -> None:
        """Set a gauge (``lag``, ``pending`` ...)."""
        with self._lock:
            self.gauges[name] = value

    def tick_rate(self, processed_total: int) -> float:
        """Update and return events/s over the last ~10 s from a running total."""
        now = time.monotonic()
        with self._lock:
            self._rate_window.append((now, processed_total))
            while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 10:
                self._rate_window.pop(0)
            t0, n0 = self._rate_window[0]
            rate = (processed_total - n0) / (now - t0) if now > t0 else 0.0
            self.gauges["events_per_second"] = rate
            return rate

    def snapshot(self) -> dict[str, Any]:
        """Everything as a plain dict (for logs and tests)."""
        with self._lock:
            return {
                "events": dict(self.events),
                "dead_letters": dict(self.dead_letters),
                "step_seconds": dict(self.step_seconds),
                "step_events": dict(self.step_events),
                "segment_changes": self.segment_changes,
                "gauges": dict(self.gauges),
            }

    def render(self) -> str:
        """The Prometheus text exposition."""
        p = "chatpersona_stream"
        lines: list[str] = []
        with self._lock:
            lines += [f"# TYPE {p}_events_total counter"]
            lines += [
                f'{p}_events_total{{status="{k}"}} {v}' for k, v in sorted(self.events.items())
            ]
            lines += [f"# TYPE {p}_dead_letters_total counter"]
            lines += [
                f'{p}_dead_letters_total{{reason="{k}"}} {v}'
                for k, v in sorted(self.dead_letters.items())
            ]
            lines += [f"# TYPE {p}_step_seconds_total counter"]
            lines += [
                f'{p}_step_seconds_total{{step="{k}"}} {v:.6f}'
                for k, v in sorted(self.step_seconds.items())
            ]
            lines += [f"# TYPE {p}_step_events_total counter"]
            lines += [
                f'{p}_step_events_total{{step="{k}"}} {v}'
                for k, v in sorted(self.step_events.items())
            ]
            lines += [f"# TYPE {p}_segment_changes_total counter"]
            lines += [f"{p}_segment_changes_total {self.segment_changes}"]
            lines += [f"# TYPE {p}_event_to_profile_seconds histogram"]
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS, self.latency_counts, strict=False):
                cumulative += n
                lines.append(f'{p}_event_to_profile_seconds_bucket{{le="{bound}"}} {cumulative}')
            cumulative += self.latency_counts[-1]
            lines.append(f'{p}_event_to_profile_seconds_bucket{{le="+Inf"}} {cumulative}')
            lines.append(f"{p}_event_to_profile_seconds_sum {self.latency_sum:.6f}")
            lines.append(f"{p}_event_to_profile_seconds_count {cumulative}")
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {p}_{name} gauge", f"{p}_{name} {value}"]
        return "\n".join(lines) + "\n"


def serve_metrics(
    metrics: PipelineMetrics, port: int, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` in a daemon thread; call ``.shutdown()`` on the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_response(404)
                self.end_headers()
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
