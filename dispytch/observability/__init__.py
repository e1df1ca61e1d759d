"""Observability for Dispytch, built on its middleware (see docs/observability.md).

- `dispytch.observability.tracing`: OpenTelemetry spans and W3C trace context through the
  broker (`pip install 'dispytch[otel]'`);
- `dispytch.observability.metrics`: Prometheus metrics (`pip install 'dispytch[prometheus]'`),
  `dispytch.observability.otel_metrics` the same numbers on an OpenTelemetry meter;
- `dispytch.observability.health`: liveness and readiness of a listener;
- `dispytch.observability.http`: a small HTTP endpoint serving `/metrics` and the health checks.

Nothing here is imported by the core: a listener that does not turn it on runs as before.
"""
