"""Training recipes: turn a domain suite's training split into adapters on CPU (``train``),
with seeded paraphrase augmentation (``augment``) and RAFT-style retrieved contexts
(``retrieval``); ``check`` is a quick held-out answer check."""
