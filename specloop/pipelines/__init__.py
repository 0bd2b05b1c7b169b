"""Every pipeline specloop runs, declared once as data (see :mod:`specloop.pipelines.registry`).

Importing this package registers the shipped pipelines.
"""

from specloop.pipelines import create, deft
from specloop.pipelines.registry import GATE, ROLES, Pipeline, Stage, get_pipeline, list_pipelines

__all__ = ["GATE", "ROLES", "Pipeline", "Stage", "create", "deft", "get_pipeline", "list_pipelines"]
