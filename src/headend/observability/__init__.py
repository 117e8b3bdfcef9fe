"""Seeing headend run: Prometheus metrics, the access log, OpenTelemetry traces."""
