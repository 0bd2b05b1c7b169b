"""The ChangeNet library API the DEFT loop uses, in one import (this loads torch and timm)."""

from specloop.skills.changenet.checkpoint import load_backbone_features, load_model
from specloop.skills.changenet.evaluate import evaluate
from specloop.skills.changenet.infer import infer
from specloop.skills.changenet.kpi import KPI_DEFINITION, far_at_full_recall
from specloop.skills.changenet.launch import train_under_torchrun
from specloop.skills.changenet.model import ChangeNet, build_model
from specloop.skills.changenet.scores import SCORE_COLUMN
from specloop.skills.changenet.select import select_checkpoint
from specloop.skills.changenet.train import TrainResult, dataset_paths, train

__all__ = [
    "KPI_DEFINITION",
    "SCORE_COLUMN",
    "ChangeNet",
    "TrainResult",
    "build_model",
    "dataset_paths",
    "evaluate",
    "far_at_full_recall",
    "infer",
    "load_backbone_features",
    "load_model",
    "select_checkpoint",
    "train",
    "train_under_torchrun",
]
