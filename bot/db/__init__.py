"""Persistence: rows, the engine, and the unit of work."""
