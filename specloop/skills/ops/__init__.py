"""Environment, deployment and monitoring tools."""
