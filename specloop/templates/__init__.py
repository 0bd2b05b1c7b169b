"""Templates shipped as package data (the report HTML, target-project files)."""
