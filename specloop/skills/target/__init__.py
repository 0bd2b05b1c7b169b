"""Deterministic tools for part B of the create flow, inside the target project: the inherited rules,
the environment report, the mini-dataset description, headless notebook execution, the bug-fix rule
table with error signatures and fixes, and the full-training guidance. No agent, graph or LLM here."""
