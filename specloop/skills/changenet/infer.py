"""Inference: score every row of a CSV with a checkpoint and write the rows plus `siamese_score`."""

from __future__ import annotations

from pathlib import Path

from specloop.skills.aoi.spec import ExperimentSpec
from specloop.skills.changenet.checkpoint import load_model
from specloop.skills.changenet.data import ImageLayout, PairDataset, Preprocess
from specloop.skills.changenet.predict import predict
from specloop.skills.changenet.progress import Bar, say
from specloop.skills.changenet.runtime import barrier, runtime
from specloop.skills.changenet.scores import SCORE_COLUMN, write_csv_atomic


def infer(
    spec: ExperimentSpec | None,
    root: Path,
    checkpoint: Path,
    csv: Path,
    images_dir: Path,
    out_csv: Path,
    *,
    progress: bool = True,
) -> Path:
    """Write `out_csv`: the CSV's rows (14 contract columns, extra columns kept) plus `siamese_score`.

    The image geometry, lights and normalisation come from the checkpoint's own spec (what the model
    was trained on); `spec` supplies the device, batch size and image extension. `spec=None` uses the
    checkpoint's spec for everything."""
    device = spec.train.device if spec is not None else "auto"
    with runtime(device) as rt:
        show = progress and rt.is_main
        model, ck_spec = load_model(checkpoint, rt.device)
        ds = ck_spec.dataset.classify.model_copy(deep=True)
        run_spec = spec or ck_spec
        ds.image_ext = run_spec.dataset.classify.image_ext
        layout = ImageLayout.from_config(ds)
        data = PairDataset.from_csv(csv, images_dir, layout)
        pre = Preprocess(ds, layout, augment=False)
        batch = run_spec.inference.batch_size or run_spec.dataset.classify.batch_size
        with Bar(f"infer {csv.name}", len(data), enabled=show) as bar:
            scores, _ = predict(model, data, pre, rt, batch_size=batch, bar=bar)
        if rt.is_main:
            out = data.df.copy()
            out[SCORE_COLUMN] = scores
            write_csv_atomic(out, out_csv)
            say(f"[infer] {len(data)} rows scored with {checkpoint.name} → {out_csv}", enabled=show)
        barrier(rt)
    return out_csv
