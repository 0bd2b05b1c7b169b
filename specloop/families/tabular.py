"""Tabular classification: scikit-learn's shipped wine data offline, UCI Adult in full."""

from __future__ import annotations

from specloop.families import register_family
from specloop.families.base import Candidate, DatasetRef, Family

MLP = Candidate(
    name="mlp",
    title="MLP (pure PyTorch)",
    description="Standardised features through two hidden layers with ReLU and dropout.",
    requirements=(),
    model={"arch": "mlp", "in_features": 13, "hidden": 64, "depth": 2, "dropout": 0.1},
    pros=("tiny and fast", "a strong baseline on small tables", "torch only"),
    cons=("no built-in handling of categorical columns (one-hot them first)",),
    constraints="CPU-friendly; numeric features only",
)

RESMLP = Candidate(
    name="resmlp",
    title="Residual MLP (pure PyTorch)",
    description="A linear stem and residual blocks (LayerNorm, Linear, GELU, dropout) for deeper tables.",
    requirements=(),
    model={"arch": "resmlp", "in_features": 13, "hidden": 128, "blocks": 3, "dropout": 0.1},
    pros=("trains stably when deeper", "better on large tables with many interactions"),
    cons=("more parameters than the MLP for the same width", "overfits tiny tables sooner"),
    constraints="CPU-friendly; numeric features only",
)

register_family(
    Family(
        name="tabular",
        title="Tabular classification",
        modality="tabular",
        task="classification",
        keywords={
            "en": (
                "tabular",
                "table",
                "csv",
                "spreadsheet",
                "excel",
                "columns",
                "features",
                "churn",
                "credit",
                "fraud",
                "price",
                "customer",
                "wine",
            ),
            "zh": (
                "表格",
                "表格数据",
                "结构化",
                "csv",
                "客户流失",
                "流失",
                "信用",
                "欺诈",
                "价格",
                "预测",
                "特征",
            ),
        },
        metric="accuracy",
        candidates=(MLP, RESMLP),
        mini_dataset=DatasetRef(
            name="sklearn-wine",
            source="sklearn.datasets.load_wine (shipped with scikit-learn, no download)",
            size="178 rows, 13 numeric features, 3 classes; the mini set takes a stratified sample as CSV",
            licence="BSD-3-Clause (scikit-learn); UCI Wine data, CC BY 4.0",
            how_to_obtain="python scripts/make_mini.py --out data/mini (offline)",
            offline=True,
        ),
        full_dataset=DatasetRef(
            name="UCI Adult (Census Income)",
            source="https://archive.ics.uci.edu/dataset/2/adult",
            size="48,842 rows, 14 features (6 numeric, 8 categorical), 2 classes, about 4 MB",
            licence="CC BY 4.0",
            how_to_obtain=(
                "download adult.data / adult.test on a machine with internet, one-hot the categorical "
                "columns, write DIR/train.csv and DIR/val.csv with a `target` column, then set "
                "model.in_features and model.num_classes and train with --data DIR"
            ),
            offline=False,
        ),
        template="tabular",
        requirements=("scikit-learn>=1.3",),
        labels=("class_0", "class_1", "class_2"),
        config={"data": {"root": "data/mini", "target": "target"}, "train": {"batch_size": 16, "epochs": 20}},
        mini_per_class=40,
        full_train_samples=32_561,
    )
)
