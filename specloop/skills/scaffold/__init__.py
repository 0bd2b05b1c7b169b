"""The create flow's deterministic tools: requirements parsing, measurement, code generation, review.

Import the submodules directly; this package re-exports nothing.
"""
