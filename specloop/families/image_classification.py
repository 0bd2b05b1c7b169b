"""Image classification: handwritten digits offline (scikit-learn's shipped 8x8 digits), MNIST in full."""

from __future__ import annotations

from specloop.families import register_family
from specloop.families.base import Candidate, DatasetRef, Family

SMALL_CNN = Candidate(
    name="small_cnn",
    title="Small CNN (pure PyTorch)",
    description="Two conv blocks and a linear head; runs on the CPU-only torch wheel, no torchvision.",
    requirements=(),
    model={"arch": "small_cnn", "in_chans": 1, "width": 32, "dropout": 0.1},
    pros=("tiny (tens of thousands of parameters)", "trains in seconds on a laptop CPU", "torch only"),
    cons=("no pretrained weights", "accuracy saturates on harder, larger images"),
    constraints="CPU-friendly; grayscale or RGB at any size down to 8x8 pixels",
    config={"data": {"image_size": 16}},
)

RESNET18 = Candidate(
    name="resnet18",
    title="ResNet-18 (timm)",
    description="timm's resnet18 built with pretrained=False; swap in local weights for transfer learning.",
    requirements=("timm>=1.0", "torchvision>=0.17"),
    model={"arch": "resnet18", "in_chans": 1, "drop_rate": 0.0},
    pros=(
        "standard, well-understood backbone",
        "scales to real photos",
        "local pretrained weights can be loaded",
    ),
    cons=("11 M parameters: slower on CPU", "needs torch + torchvision + timm (a heavy venv)"),
    constraints="GPU recommended for the full dataset; images of 32 pixels or more",
    cpu_friendly=False,
    config={"data": {"image_size": 32}, "train": {"lr": 0.0005}},
)

register_family(
    Family(
        name="image_classification",
        title="Image classification",
        modality="image",
        task="classification",
        keywords={
            "en": (
                "image",
                "images",
                "photo",
                "picture",
                "handwritten digit",
                "digit",
                "mnist",
                "recognize",
                "recognise",
                "image classification",
                "vision",
                "camera",
            ),
            "zh": ("图像", "图片", "照片", "手写数字", "数字识别", "识别", "视觉", "分类图片"),
        },
        metric="accuracy",
        candidates=(SMALL_CNN, RESNET18),
        mini_dataset=DatasetRef(
            name="sklearn-digits",
            source="sklearn.datasets.load_digits (shipped with scikit-learn, no download)",
            size="1,797 grayscale 8x8 images, 10 classes; the mini set takes a stratified sample written as PNGs",
            licence="BSD-3-Clause (scikit-learn); a copy of the UCI optical recognition of digits test set",
            how_to_obtain="python scripts/make_mini.py --out data/mini (offline)",
            offline=True,
        ),
        full_dataset=DatasetRef(
            name="MNIST",
            source="http://yann.lecun.com/exdb/mnist/ (mirrors: torchvision.datasets.MNIST, Hugging Face ylecun/mnist)",
            size="70,000 grayscale 28x28 images (60,000 train / 10,000 test), 10 classes, about 55 MB",
            licence="CC BY-SA 3.0",
            how_to_obtain=(
                "download the four IDX files on a machine with internet, write them as "
                "DIR/{train,val}/<digit>/<n>.png and train with --data DIR"
            ),
            offline=False,
        ),
        template="image_classification",
        requirements=("pillow>=10.0", "scikit-learn>=1.3"),
        labels=tuple(str(d) for d in range(10)),
        config={"data": {"root": "data/mini", "image_size": 16}},
        mini_per_class=30,
        full_train_samples=60_000,
    )
)
