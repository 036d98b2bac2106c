"""Emitters: Prometheus (pull) and OpenTelemetry (push), both walking catalog x Snapshot."""
