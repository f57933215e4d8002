"""Load tests and benchmarks for smsblast: `python -m loadtest SCENARIO`."""
