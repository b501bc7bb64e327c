"""`deeppose demo`: the shipped model on real photos of different kinds (`run_photo_demo`, the default), or the
training demo on synthetic people (`run_demo`, `deeppose demo --train`).

The photo demo runs the default model (person localizer + pose cascade) on LSP test images (crops around one
person), whole LSPET photos from the localizer's validation split (never trained on by it), the MPII scenes
(people small in wide frames) and pictures with nobody in them (a region of a photo clear of its person, and a
synthetic background); it prints a line per image and writes a contact sheet with the boxes found and the
skeletons, and one JSON per image.

The training demo generates a synthetic dataset, trains the small stage-1 regressor with the real training
engine (DeepPose Eq. 4 with L1, AdamW, augmentation, validation-based selection), evaluates the best
checkpoint on the test split and writes a report folder: metrics.json, pdj.png, sheet.png, the run (run/:
checkpoints, logs) and a mean-pose baseline (baseline/).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from deeppose.config import load_config
from deeppose.data.io import read_image
from deeppose.data.registry import load_dataset
from deeppose.data.synthetic import load_synthetic, write_synthetic
from deeppose.data.torch_dataset import CropDataset
from deeppose.eval.report import format_pcp_table, write_report
from deeppose.files import write_json
from deeppose.geometry import corner_box
from deeppose.serve.batch import predict_dataset
from deeppose.serve.predictor import Prediction, Predictor
from deeppose.serve.records import prediction_picture, prediction_record
from deeppose.train import distributed
from deeppose.train.loop import fit
from deeppose.visualize import contact_sheet, save_image

# data/multi photos of several people, and a photo of data/negatives/test (a cat), in the photo demo
MULTI_PHOTOS = ("coco_000000196141.jpg", "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg")
NOBODY_PHOTO = "inet_n02124075_Egyptian_cat.jpg"
DEMO_OVERRIDES = ["data.train=[synthetic:train]", "data.val_size=200", "data.num_workers=0",
                  "data.augment.rotation_deg=20", "data.augment.scale=[0.85,1.2]", "model.arch=small",
                  "model.channels_last=false", "optim.lr=2e-3", "optim.batch_size=64", "optim.warmup_steps=50",
                  "loss=l1"]


class MeanPose(torch.nn.Module):
    """A baseline "model" that predicts one fixed pose (K, 2), in normalized crop coordinates, for every crop."""

    def __init__(self, pose: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pose", pose)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pose.expand(images.shape[0], -1, -1)


def run_demo(out: str | Path, epochs: int = 30, seed: int = 0, input_size: int = 64, n_train: int = 2000,
             n_test: int = 200, progress: bool = True) -> dict:
    """Generate synthetic people, train the small regressor for `epochs`, evaluate, write the report.

    Returns:
        the test metrics (also in out/metrics.json), with the mean-pose baseline under "baseline".
    """
    out = Path(out)
    data = out / "data"

    def prepare() -> None:  # under torchrun, rank 0 writes the data while the others wait
        if not (data / "synthetic" / "annotations.json").is_file():
            write_synthetic(data / "synthetic", {"train": n_train, "test": n_test}, seed=seed, size=128,
                            progress=progress)
        if (out / "run").exists():  # the demo owns its run folder: a new demo is a new run
            shutil.rmtree(out / "run")

    w = distributed.world()
    distributed.on_main(w, prepare)
    cfg = load_config(None, DEMO_OVERRIDES + [f"data.root={data}", f"data.input_size={input_size}",
                                              f"epochs={epochs}", f"seed={seed}"])
    result = fit(cfg, out / "run", progress=progress)
    if not w.is_main:  # rank 0 evaluates and reports
        return {}
    test = load_synthetic(data / "synthetic", "test")
    pred = Predictor.from_checkpoint(result.best).predict_dataset(test, progress=progress)
    train = load_synthetic(data / "synthetic", "train")
    plain = CropDataset(train, input_size)
    mean_pose = torch.from_numpy(np.mean([plain[i]["joints"].numpy() for i in range(0, len(train), 10)], axis=0))
    baseline = write_report(out / "baseline", predict_dataset(MeanPose(mean_pose), test, input_size, progress=False),
                            test, "mean pose baseline")
    metrics = write_report(out, pred, test, f"demo regressor, {epochs} epochs", extra={
        "train": result.summary(), "baseline": {"pcp": baseline["pcp"], "pck": baseline["pck"]}})
    print(format_pcp_table({"mean pose": baseline["pcp"], "demo model": metrics["pcp"]}))
    print(f"PCK@0.2: mean pose {baseline['pck']['0.2']:.3f}  demo model {metrics['pck']['0.2']:.3f}   "
          f"report: {out}")
    return metrics


def demo_photos(root: Path, seed: int = 0) -> list[tuple[str, np.ndarray, Path | None]]:
    """The photo demo's pictures: (caption, RGB image, its file, None for a made picture) for 3 LSP test images, 3
    whole LSPET photos of the held-out split, the 5 MPII scenes, 2 photos of several people (data/multi), and 3
    pictures with nobody in them (a real photo of data/negatives/test, a part of a photo, a synthetic one)."""
    from deeppose.data.whole_image import ZoomOut, clear_region, synthetic_background
    from deeppose.geometry import joints_box
    from deeppose.train.localizer import whole_image_splits

    photos = []
    lsp = load_dataset("lsp", root / "lsp", "test")
    photos += [(f"lsp {lsp[i].image_id}", read_image(lsp[i].image_path), lsp[i].image_path) for i in (7, 250, 611)]
    lspet_val = whole_image_splits(root, seed)["lspet_val"]
    photos += [(f"lspet {lspet_val[i].image_id}", read_image(lspet_val[i].image_path), lspet_val[i].image_path)
               for i in (5, 120, 333)]
    mpii = load_dataset("mpii", root / "mpii", "all")
    photos += [(f"mpii {s.image_id}", read_image(s.image_path), s.image_path) for s in mpii.samples]
    for name in MULTI_PHOTOS:
        path = root / "multi" / "images" / name
        photos.append((f"multi {Path(name).stem[:24]}", read_image(path), path))
    negative = root / "negatives" / "test" / NOBODY_PHOTO
    photos.append((f"nobody: {NOBODY_PHOTO}", read_image(negative), negative))
    rng = np.random.default_rng(seed)
    for s in lspet_val.samples[400:]:
        image = read_image(s.image_path)
        box = clear_region(rng, image.shape[1], image.shape[0], joints_box(s.joints, s.labelled), ZoomOut(
            min_region=0.4))
        if box is not None:
            x0, y0, side = (int(v) for v in corner_box(box)[:3])
            photos.append((f"nobody: part of lspet {s.image_id}", image[max(y0, 0):y0 + side, max(x0, 0):x0 + side],
                           None))
            break
    photos.append(("nobody: synthetic", synthetic_background(rng, 240), None))
    return photos


def describe(caption: str, result: Prediction) -> str:
    """One line for one picture of the demo: how many people were found, and the best one's score and box."""
    x, y, w, h = result.box
    if result.person_found:
        n = len(result.people)
        return (f"{caption:<34} {n} {'person' if n == 1 else 'people'} found (best person_score "
                f"{result.person_score:.2f}, box {x:.0f},{y:.0f},{w:.0f},{h:.0f}, {result.passes} pose passes)")
    return f"{caption:<34} nobody found  (best person_score {result.person_score:.2f})"


def run_photo_demo(out: str | Path, checkpoint: str | Path, root: str | Path, seed: int = 0) -> list[Prediction]:
    """The shipped model on `demo_photos`: a line per picture, out/sheet.png (everyone's boxes and skeletons, one
    colour per person where there are several; a red box where nobody was found) and out/<n>.json per picture, in
    the prediction schema (`serve.records.prediction_record`; "image" the picture's file where it is one)."""
    out = Path(out)
    predictor = Predictor.from_checkpoint(checkpoint)
    if not predictor.has_localizer:
        raise ValueError(f"{checkpoint}: the photo demo needs a model with a person detector")
    photos = demo_photos(Path(root), seed)
    results = predictor.predict_images([im for _, im, _ in photos])
    tiles, captions = [], []
    for k, ((caption, image, file), r) in enumerate(zip(photos, results)):
        print(describe(caption, r))
        tiles.append(prediction_picture(image, r, predictor.skeleton))
        captions.append(f"{caption} ({len(r.people)}: {r.person_score:.2f})")
        record = prediction_record(r, predictor, image)
        write_json(out / f"{k:02d}.json", record if file is None else {"image": str(Path(file).resolve()), **record})
    save_image(out / "sheet.png", contact_sheet(tiles, columns=5, tile_size=240, captions=captions))
    print(f"contact sheet: {out / 'sheet.png'}")
    return results
