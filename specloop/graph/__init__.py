"""LangGraph wiring only: state types, the DEFT graph, the approval gate, checkpointer selection."""
