"""Deterministic tools grouped by subject. Skills never import agents or graph modules."""
