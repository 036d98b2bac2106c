"""The exporter's HTTP front (asyncio, one thread): request parsing, TLS, basic auth, routing.
`gpumetrics.export.server.MetricsServer` is the public entry point."""
