"""Graceful model updates: measure regressions, train without them, keep embeddings compatible, gate releases."""
