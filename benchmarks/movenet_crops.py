"""MoveNet Lightning and our pose networks on the same person crops, scored on the 12 limb joints LSP-14 and COCO-17
share (PCK@0.2 of the torso diameter).

Each person's crop is the square around the box our evaluation gives the network ("annotated": LSP test's whole
image, LSPET val's and data/multi's labelled joints' extent at 1.33), cut once by one affine warp and resized to
each network's input (MoveNet: 192 px, uint8; ours: its own size, from the same box). MoveNet runs in a worker
process of the peers' interpreter (`--peer-python`, a venv with ai-edge-litert: this project never depends on it
at run time); its 17 COCO keypoints are mapped back through the inverse warp and renamed into LSP-14.

    python benchmarks/movenet_crops.py --peer-python runs/peers/bin/python \\
        --system default=models/deeppose_movenet_person.pt --system movenet-start=runs/mn/best.pt
Writes benchmarks/results/<name>.json and prints a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import write_result
from transfer import evaluation_sets

from deeppose.data.io import read_image
from deeppose.data.transforms import sample_box
from deeppose.eval.metrics import pck
from deeppose.geometry import augmentation_matrix, invert_affine, transform_points, warp_image
from deeppose.paths import data_root
from deeppose.serve.predictor import Predictor
from deeppose.skeleton import COCO17, LSP14

MOVENET_SIZE = 192
LIMBS12 = [j for j in LSP14.joints if j not in ("neck", "head_top")]
WORKER = r'''
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=2)
it.allocate_tensors()
inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
crops = np.load(sys.argv[2])
result = []
for crop in crops:
    it.set_tensor(inp, crop[None])
    it.invoke()
    result.append(it.get_tensor(out)[0, 0])
np.save(sys.argv[3], np.stack(result))
'''


def crops_and_affines(dataset, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 crops of each person's square box and (N, 2, 3) image -> crop affines."""
    crops, affines = [], []
    for s in dataset.samples:
        image = read_image(s.image_path)
        a = augmentation_matrix(sample_box(s, image.shape), (size, size))
        crops.append(warp_image(image, a, (size, size)))
        affines.append(a)
    return np.stack(crops), np.stack(affines)


def movenet_predictions(peer_python: str, model: Path, crops: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """(N, 14, 2) image pixels: MoveNet's COCO keypoints on the crops, mapped back and renamed into LSP-14 (neck and
    head top left at 0: not scored)."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/crops.npy", crops)
        subprocess.run([peer_python, "-c", WORKER, str(model), f"{tmp}/crops.npy", f"{tmp}/out.npy"], check=True)
        out = np.load(f"{tmp}/out.npy")  # (N, 17, 3): y, x normalized to the crop, score
    crop_px = out[:, :, [1, 0]] * MOVENET_SIZE - 0.5  # pixel centres: x = u * size - 1/2
    image_px = np.stack([transform_points(invert_affine(a), p) for a, p in zip(affines, crop_px)])
    pred = np.zeros((len(out), 14, 2))
    for j in LIMBS12:
        pred[:, LSP14.index(j)] = image_px[:, COCO17.index(j)]
    return pred


def limb_pck(pred: np.ndarray, dataset) -> float:
    """PCK@0.2 over the 12 limb joints only."""
    labelled = dataset.labelled().copy()
    labelled[:, [LSP14.index("neck"), LSP14.index("head_top")]] = False
    return pck(pred, dataset.joints(), labelled, LSP14)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default=sys.executable, help="python of a venv with ai-edge-litert")
    parser.add_argument("--movenet", type=Path, default=data_root().parent / "peers" /
                        "movenet_single_pose_lightning_ptq.tflite")
    parser.add_argument("--system", action="append", default=[], help="label=checkpoint (ours), in order")
    parser.add_argument("--name", default="movenet_crops")
    args = parser.parse_args()
    sets = evaluation_sets()
    table: dict[str, dict[str, float]] = {"MoveNet Lightning (int8)": {}}
    for key, dataset in sets.items():
        crops, affines = crops_and_affines(dataset, MOVENET_SIZE)
        table["MoveNet Lightning (int8)"][key] = limb_pck(movenet_predictions(args.peer_python, args.movenet, crops,
                                                                              affines), dataset)
    for item in args.system:
        label, _, checkpoint = item.partition("=")
        predictor = Predictor.from_checkpoint(checkpoint)
        table[label] = {key: limb_pck(predictor.predict_dataset(dataset, progress=False), dataset)
                        for key, dataset in sets.items()}
    for label, row in table.items():
        print(f"{label:28s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    path = write_result(args.name, {
        "what": "PCK@0.2 on the 12 limb joints, each person given its annotated box, the same square crop for every "
                "network (MoveNet at 192 px, ours at its input size)",
        "sets": {k: len(v) for k, v in sets.items()}, "systems": table,
        "checkpoints": dict(s.partition("=")[::2] for s in args.system)},
        " ".join(["python", "benchmarks/movenet_crops.py", *sys.argv[1:]]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
