"""Benchmarks: speed targets measured against a throwaway database; run ``bench/run.py``."""
