"""What a task family declares: its candidates, datasets, metric, lexicon and template.

A family is pure data. The create flow matches a requirement to a family by its lexicon, measures
its candidates, and renders the family's template into a target project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a family trains on: the offline mini set, or the named full set."""

    name: str
    source: str  # where it comes from, e.g. "sklearn.datasets.load_digits" or a URL for the full set
    size: str  # e.g. "1,797 images, 8x8, 10 classes"
    licence: str
    how_to_obtain: str
    offline: bool  # True when this machine can build it with no network


@dataclass(frozen=True)
class Candidate:
    """One model the family can generate, with what it needs and what it costs."""

    name: str  # stable id, e.g. "small_cnn"
    title: str
    description: str
    requirements: tuple[str, ...]  # pip distributions the generated code needs, beyond the family's
    model: Mapping[str, Any]  # the `model:` section of the generated configs/default.yaml
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    constraints: str  # e.g. "CPU-friendly; input fixed at 8x8"
    cpu_friendly: bool = True
    # per-section overrides merged over the family's config, e.g. {"data": {"image_size": 32}}
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str  # registry key, e.g. "image_classification"
    title: str
    modality: str  # image | text | tabular | timeseries | aoi
    task: str  # classification | regression | forecasting | change_detection
    keywords: Mapping[str, tuple[str, ...]]  # {"en": (...), "zh": (...)}: the requirement lexicon
    metric: str  # the metric the project reports, e.g. "accuracy"
    candidates: tuple[Candidate, ...]
    mini_dataset: DatasetRef
    full_dataset: DatasetRef
    template: str  # folder under specloop/templates/target/
    requirements: tuple[str, ...] = ()  # pip distributions every candidate needs
    labels: tuple[str, ...] = ()  # the mini set's class names (a requirement's labels rename them)
    # sections of the generated configs/default.yaml the family sets: `data` (required) and
    # overrides of the common `train` / `infer` / `serve` defaults
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mini_per_class: int = 30  # default size of the mini set (samples, or series, per class)
    # how many rows one epoch of the full dataset trains on (for tech.md's extrapolations)
    full_train_samples: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"family {self.name} has no candidate {name!r}")
