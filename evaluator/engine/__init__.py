"""The evaluation engine: lm-eval backends, retrievers and the arm runner.

No Django here; torch, lm-eval and the retrievers are imported lazily, inside the
worker's code path, so the web process never loads them.
"""
