"""Benchmarks of kbase: ingest cost, retrieval latency, and question answering on a
synthetic temporal news stream. Each module runs with ``python -m benchmarks.NAME``."""
