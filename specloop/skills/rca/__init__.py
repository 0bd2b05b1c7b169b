"""Root-cause analysis of KPI gaps (routing the weak samples it selects is `skills.routing`)."""
