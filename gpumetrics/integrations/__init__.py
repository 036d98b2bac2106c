"""Engine plugins: code an inference engine loads into its own process.

`gpumetrics.integrations.vllm` is vLLM's stat-logger plugin (entry point group
`vllm.stat_logger_plugins`). Only the engine imports these modules; nothing else in gpumetrics
does (tests/test_boundaries.py holds that), so vLLM stays an optional, never-imported dependency.
"""
