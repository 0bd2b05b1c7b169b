"""AOI change detection: is a PCB component's test image a defect, against its golden image?

Where specloop's two jobs meet: the generated project is a standalone, smaller sibling of
``specloop.skills.changenet`` — a siamese timm backbone (built with ``pretrained=False``) with a
learnable difference head, data in the 14-column ChangeNet CSV format, and the KPI of the DEFT
loop, the false-alarm rate at 100 % defect recall. Its ``make_mini`` draws tiny synthetic board
pairs with numpy, or samples a DEFT workspace (``--source``; the create flow passes one written by
``specloop.skills.aoi.synth.synthesize_workspace``).
"""

from __future__ import annotations

from specloop.families import register_family
from specloop.families.base import Candidate, DatasetRef, Family

DEFECT_TYPES = ("missing", "shift", "bridge")  # what the drawn mini set plants (its data.DEFECTS)

RESNET18 = Candidate(
    name="resnet18",
    title="Siamese ResNet-18 (timm)",
    description=(
        "timm resnet18 (features_only, pretrained=False) shared by golden and test; per scale a learned "
        "difference block over [g, t, |g - t|], pooled and fused into 2 logits — TAO ChangeNet's classify head."
    ),
    requirements=(),
    model={"arch": "resnet18", "n_scales": 3, "embed_dim": 32, "dropout": 0.1},
    pros=(
        "the backbone specloop's DEFT loop trains: results carry over",
        "strong texture features; local weights can be loaded for transfer learning",
    ),
    cons=(
        "11 M backbone parameters: tens of pairs per second on a 2-core CPU",
        "heavier venv (timm + torchvision)",
    ),
    constraints="GPU recommended for the full dataset; crops of 32 pixels or more per light",
    cpu_friendly=False,
)

MOBILENET = Candidate(
    name="mobilenetv3_small",
    title="Siamese MobileNetV3-Small (timm)",
    description=(
        "timm mobilenetv3_small_100 (features_only, pretrained=False) with the same difference head; "
        "about a tenth of ResNet-18's parameters."
    ),
    requirements=(),
    model={"arch": "mobilenetv3_small_100", "n_scales": 3, "embed_dim": 32, "dropout": 0.1},
    pros=("under 1 M backbone parameters: CPU- and edge-friendly", "lower latency at batch 1"),
    cons=("depthwise convolutions train less stably on tiny sets", "lower capacity on subtle defects"),
    constraints="CPU-friendly; crops of 32 pixels or more per light",
)

register_family(
    Family(
        name="aoi_change_detection",
        title="AOI change detection (PCB golden/test pairs)",
        modality="aoi",
        task="change_detection",
        keywords={
            "en": (
                "aoi",
                "pcb",
                "solder",
                "defect",
                "defects",
                "inspection",
                "golden",
                "circuit board",
                "changenet",
                "false alarm",
                "component",
            ),
            "zh": ("缺陷", "检测", "焊点", "电路板", "AOI", "光学检测", "误报", "元件", "良品", "不良"),
        },
        metric="far_at_full_recall",
        candidates=(MOBILENET, RESNET18),
        mini_dataset=DatasetRef(
            name="drawn-pcb-pairs",
            source=(
                "drawn by the project's data.make_mini with numpy (components, pads, solder; defects "
                f"{', '.join(DEFECT_TYPES)}), or sampled from a DEFT workspace with --source"
            ),
            size="12 golden/test pairs per label by default (PASS and 3 defect types), 2 lights of 48x48 px, "
            "ChangeNet CSV, stratified 75/25 split",
            licence="generated data, no licence restrictions",
            how_to_obtain="python scripts/make_mini.py --out data/mini (offline; --source WS samples a DEFT workspace)",
            offline=True,
        ),
        full_dataset=DatasetRef(
            name="DEFT AOI workspace (ChangeNet classify CSVs)",
            source=(
                "your AOI line's golden/test crops exported in TAO Visual ChangeNet classify format, or the "
                "synthetic workspace `specloop synth` writes (small: about 2,000 training pairs)"
            ),
            size="production lines: 10,000s to 100,000s of pairs; 14-column CSV, 2 lights per pair",
            licence="your own production data (proprietary); the synthetic workspace is Apache-2.0 like specloop",
            how_to_obtain=(
                "python scripts/make_mini.py --source WS --per-class N --out DIR samples WS's "
                "train/base/{training,validation}_set.csv with its images; or point --data at a folder "
                "holding train.csv, val.csv and images/"
            ),
            offline=True,
        ),
        template="aoi_change_detection",
        requirements=("pillow>=10.0", "timm>=1.0", "torchvision>=0.17"),
        labels=("PASS", "DEFECT"),
        config={
            "data": {
                "root": "data/mini",
                "image_size": 48,
                "lights": ["SolderLight", "UniformLight"],
                "image_ext": ".png",
            },
            "train": {"batch_size": 16, "epochs": 3},
        },
        mini_per_class=12,
        full_train_samples=2_000,
    )
)
