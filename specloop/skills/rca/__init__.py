"""Root-cause analysis of KPI gaps and routing of weak samples."""
