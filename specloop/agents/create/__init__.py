"""The roles of the create flow (CREATE_FLOW.md part A), one module each, sharing the DEFT roles'
base: role text, contracts, transcript, the model's drafts checked number by number."""
