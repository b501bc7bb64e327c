"""The head-to-head comparison: every head on the same backbone, data and CPU budget, on LSP test.

A spec (YAML) names a base stage-1 config, the budget, a cascade recipe, and the entries (overrides of the base):

    base: mobilenet_v2_cpu.yaml          # relative to the spec file
    budget_minutes: 15                   # training time of every stage-1 entry
    cascade: mobilenet_v2_cascade_limbs_cpu.yaml
    cascade_minutes: 8                   # training time of the refinement stage ("+ cascade" rows)
    busy_limit: 0.5                      # most CPU cores other processes may take during the probe (default)
    epochs: 2                            # optional: every entry trains this many epochs instead (no probe)
    entries:
      - {name: fc_l2, label: "FC + L2 (DeepPose)", overrides: [model.head=fc, model.stride=32, loss=l2]}

Each entry trains in `out/<name>` (resumable: a finished stage is skipped, a cut one resumes), is scored on
LSP test (PCK@0.05/0.1/0.2, PCP 4-limb mean), timed (ms per image at batch 1 on the configured threads) and
counted (parameters); `out/<name>/result.json` keeps the row. Every entry's epochs are set from a short
throughput probe so that its cosine schedule ends with its budget on an idle machine (out/<name>/plan.json), to a
hundredth of an epoch; a probe beside other busy processes stops the comparison rather than plan a shorter
schedule. A spec with `epochs` gives every entry the same number of epochs instead (the same data seen, whatever
each head costs); its budget then only sets the safety stop (three times the budget).
Entries run one after the other (stage 1, then its cascade), and every finished row is published to a results
file; the rows recorded there carry a comparison on across machines that keep no run folder. Speed depends
only on the architecture, so `retime` measures it again, untrained, on an idle machine.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from deeppose.config import load_config
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.eval.comparison import plot_comparison, score_row, time_model
from deeppose.files import write_json
from deeppose.models.cascade import Cascade
from deeppose.models.meta import ModelMeta
from deeppose.paths import data_root
from deeppose.serve.predictor import Predictor
from deeppose.skeleton import get_skeleton
from deeppose.train import distributed
from deeppose.train.budget import plan_epochs
from deeppose.train.builders import architecture, build_network
from deeppose.train.cascade import cascade_meta, refined_joints, train_cascade
from deeppose.train.loop import fit


@dataclass
class Entry:
    """One configuration of the comparison: `overrides` of the base config, and whether to add the cascade."""

    name: str
    label: str
    overrides: list[str]
    cascade: bool = True


@dataclass
class Spec:
    """A comparison (see the module docstring); paths resolved."""

    base: Path
    budget_minutes: float
    cascade: Path | None
    cascade_minutes: float
    entries: list[Entry] = field(default_factory=list)
    threads: int = 2
    references: list[dict[str, Any]] = field(default_factory=list)
    busy_limit: float = 0.5
    epochs: float | None = None


def load_spec(path: str | Path) -> Spec:
    """Read a comparison spec; DeepPoseError naming the file on a missing or malformed one."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "comparison spec not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = [Entry(e["name"], e.get("label", e["name"]), [str(o) for o in e.get("overrides", [])],
                         bool(e.get("cascade", True))) for e in raw["entries"]]
        references = [{"label": str(r["label"]), "pck_0.2": float(r["pck_0.2"]), "pcp": float(r["pcp"]),
                       "ms_per_image": float(r["ms_per_image"]), "source": str(r.get("source", ""))}
                      for r in raw.get("references", [])]
        spec = Spec(path.parent / raw["base"], float(raw["budget_minutes"]),
                    path.parent / raw["cascade"] if raw.get("cascade") else None,
                    float(raw.get("cascade_minutes", 0)), entries, int(raw.get("threads", 2)), references,
                    float(raw.get("busy_limit", 0.5)),
                    float(raw["epochs"]) if raw.get("epochs") is not None else None)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise DeepPoseError(path, f"malformed comparison spec ({type(exc).__name__}: {exc})") from None
    names = [e.name for e in entries]
    if not entries or len(set(names)) != len(names):
        raise DeepPoseError(path, "a comparison needs entries with distinct names")
    if not 0 < spec.budget_minutes < float("inf"):
        raise DeepPoseError(path, "budget_minutes must be positive")
    if spec.epochs is not None and not 0 < spec.epochs < float("inf"):
        raise DeepPoseError(path, f"epochs must be a positive number, not {spec.epochs}")
    return spec






def stage1_row(spec: Spec, entry: Entry, out: Path, test: PoseDataset, progress: bool = True) -> dict[str, Any]:
    """Train (or resume), score and time one entry's stage-1 model; kept in out/<name>/result.json."""
    run = out / entry.name
    result_path = run / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    plan_path = run / "plan.json"
    w = distributed.world()  # under torchrun: every process trains, rank 0 plans, scores and writes

    def make_plan() -> dict[str, Any]:
        if spec.epochs is not None:
            return {"epochs": spec.epochs, "fixed": True}
        if plan_path.is_file():
            return json.loads(plan_path.read_text())
        planned = plan_epochs(load_config(spec.base, entry.overrides), spec.budget_minutes, run, spec.busy_limit)
        write_json(plan_path, planned)
        return planned

    plan = distributed.on_main(w, make_plan)
    # the budget is the planned epochs; max_minutes only stops a run gone wrong (a busy machine slows a run down
    # but does not cut it short)
    cfg = load_config(spec.base, [*entry.overrides, f"epochs={plan['epochs']}",
                                  f"max_minutes={spec.budget_minutes * 3:g}"])
    stage1 = run / "stage1"
    result = fit(cfg, stage1, resume=(stage1 / "last.pt").is_file(), progress=progress)  # a finished run returns
    if result.best is None:
        raise DeepPoseError(stage1, "training ended without a validated checkpoint (best.pt)")

    def score() -> dict[str, Any]:
        row = {"name": entry.name, "label": entry.label, "overrides": entry.overrides,
               "budget_minutes": spec.budget_minutes, "plan": plan,
               "train_minutes": round(result.train_seconds / 60, 1), "best_val_pck": result.best_val_pck,
               "stage1": score_row(result.best, test, spec.threads, progress)}
        write_json(result_path, row)
        return row

    return distributed.on_main(w, score)


def cascade_row(spec: Spec, entry: Entry, out: Path, test: PoseDataset, progress: bool = True) -> dict[str, Any]:
    """Add the spec's refinement stage on top of an entry's stage 1 (trained first by `stage1_row`); the row
    gains a "cascade" entry."""
    row = stage1_row(spec, entry, out, test, progress)
    if "cascade" in row or spec.cascade is None or not entry.cascade:
        return row
    run = out / entry.name
    cfg = load_config(spec.cascade, [f"cascade.stage1={run / 'stage1' / 'best.pt'}",
                                     f"cascade.max_minutes={spec.cascade_minutes:g}"])
    summary = train_cascade(cfg, run / "cascade", resume=True, progress=progress)

    def score() -> dict[str, Any]:
        row["cascade"] = {**score_row(Path(summary["cascade"]), test, spec.threads, progress),
                          "val_pck": summary["val_pck"], "max_minutes_stage2": spec.cascade_minutes}
        write_json(run / "result.json", row)
        return row

    return distributed.on_main(distributed.world(), score)


def complete(row: dict[str, Any] | None, spec: Spec, entry: Entry) -> bool:
    """Whether a recorded row is this entry's finished result: same overrides and budget (and epochs, when the
    spec fixes them), and its cascade row when the entry has one."""
    if row is None or row.get("overrides") != entry.overrides or row.get("budget_minutes") != spec.budget_minutes:
        return False
    if spec.epochs is not None and row.get("plan", {}).get("epochs") != spec.epochs:
        return False
    return "cascade" in row or spec.cascade is None or not entry.cascade


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a comparison results file (its "rows"); [] when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r for r in rows):
            raise TypeError("rows must be a list of objects with a name")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeepPoseError(path, f"not a comparison results file ({type(exc).__name__}: {exc})") from None
    return rows


def run_comparison(spec_path: str | Path, out: str | Path, only: list[str] | None = None, progress: bool = True,
                   recorded: list[dict[str, Any]] = (),
                   publish: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run (or continue) a comparison, one entry after the other: its stage 1, then its cascade.

    Within a session the run folder resumes a cut entry (out/<name>); across sessions (a fresh machine keeps no
    run folder) the recorded rows of a results file carry the comparison on: a complete recorded row is kept and
    its entry skipped.

    Args:
        only: names of the entries to run (default all); unknown names are an error.
        recorded: rows recorded earlier (e.g. `load_rows(results_file)`).
        publish: called with all rows so far, in the spec's order, after every new stage-1 or cascade row.

    Returns:
        All rows, in the spec's order (recorded ones included).
    """
    spec = load_spec(spec_path)
    names = [e.name for e in spec.entries]
    if only and (unknown := sorted(set(only) - set(names))):
        raise DeepPoseError(spec_path, f"no entries named {', '.join(unknown)}; entries: {', '.join(names)}")
    rows = {r["name"]: r for r in recorded if r["name"] in names}
    entries = [e for e in spec.entries if (not only or e.name in only) and not complete(rows.get(e.name), spec, e)]
    out = Path(out)

    def record(row: dict[str, Any]) -> None:
        rows[row["name"]] = row
        if publish is not None and distributed.world().is_main:
            publish([rows[n] for n in names if n in rows])

    if entries:
        test = load_dataset("lsp", data_root() / "lsp", "test")
    for entry in entries:
        print(f"== {entry.name} (stage 1): {entry.label}", flush=True)
        record(stage1_row(spec, entry, out, test, progress))
        if spec.cascade is not None and entry.cascade:
            print(f"== {entry.name} (+ cascade): {entry.label}", flush=True)
            record(cascade_row(spec, entry, out, test, progress))
    return [rows[n] for n in names if n in rows]


def collect_rows(spec_path: str | Path, out: str | Path, recorded: list[dict[str, Any]] = ()
                 ) -> list[dict[str, Any]]:
    """The rows finished so far, in the spec's order: the recorded row, unless a run folder's
    out/<name>/result.json has more of it (its cascade) or the recorded one is missing."""
    spec = load_spec(spec_path)
    rows = {r["name"]: r for r in recorded}
    for e in spec.entries:
        if (path := Path(out) / e.name / "result.json").is_file():
            row = json.loads(path.read_text())
            if e.name not in rows or ("cascade" in row and "cascade" not in rows[e.name]):
                rows[e.name] = row
    return [rows[e.name] for e in spec.entries if e.name in rows]


def architecture_predictors(spec: Spec, entry: Entry) -> dict[str, Predictor]:
    """Untrained Predictors with an entry's architecture ("stage1", and "cascade" when it has one): speed does not
    depend on the weights, so rows can be timed again on an idle machine without their checkpoints."""
    cfg = load_config(spec.base, entry.overrides)
    skeleton = get_skeleton("lsp14")
    stage1 = build_network(architecture(cfg.model), skeleton.num_joints, cfg.data.input_size)
    meta = ModelMeta("stage1", skeleton.name, skeleton.num_joints, cfg.data.input_size, model=cfg.model)
    out = {"stage1": Predictor(stage1, meta)}
    if spec.cascade is not None and entry.cascade:
        c = load_config(spec.cascade).cascade
        refiners = [build_network(architecture(c.model), skeleton.num_joints, c.crop_size)
                    for _ in range(c.stages - 1)]
        cascade = Cascade(stage1, refiners, skeleton, c.sigma, c.crop_size, c.source_size,
                          refined_joints(c, skeleton))
        c_meta = cascade_meta(meta, [ModelMeta("refiner", skeleton.name, skeleton.num_joints, c.crop_size,
                                               model=c.model) for _ in refiners], c)
        out["cascade"] = Predictor(cascade, c_meta)
    return out


def retime(spec_path: str | Path, rows: list[dict[str, Any]], progress: bool = True) -> list[dict[str, Any]]:
    """The rows with ms_per_image measured again from each entry's architecture (`architecture_predictors`):
    run it on an otherwise idle machine, since training beside the timing slows it down."""
    spec = load_spec(spec_path)
    entries = {e.name: e for e in spec.entries}
    timed = []
    for row in tqdm(rows, desc="timing", disable=not progress):
        row = copy.deepcopy(row)
        if row["name"] in entries:
            for key, predictor in architecture_predictors(spec, entries[row["name"]]).items():
                if key in row:
                    row[key]["ms_per_image"] = round(time_model(predictor, spec.threads), 2)
                    row[key]["timed"] = "architecture, idle machine"
        timed.append(row)
    return timed


def publish_results(path: str | Path, spec_path: str | Path, rows: list[dict[str, Any]],
                    header: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write a comparison results file (JSON, atomically; `header` first) and its plot beside it (.png).

    Returns:
        (results file, plot).
    """
    path, spec = Path(path), load_spec(spec_path)
    done = {r["name"] for r in rows if "stage1" in r}
    same = f"{spec.epochs:g} epochs" if spec.epochs is not None else f"{spec.budget_minutes:g} min"
    title = f"LSP test: heads on the same budget ({same} each), {Path(spec_path).stem}"
    plot = plot_comparison(rows, path.with_suffix(".png"), title, spec.references)
    write_json(path, {**(header or {}), "dataset": "LSP test (1001-2000), all 14 joints scored",
                      "spec": str(spec_path), "budget_minutes": spec.budget_minutes, "epochs": spec.epochs,
                      "cascade_minutes": spec.cascade_minutes, "threads": spec.threads, "rows": rows,
                      "references": spec.references, "pending": [e.name for e in spec.entries if e.name not in done],
                      "plot": plot.name})
    return path, plot


def carry_on(spec_path: str | Path, out: str | Path, results: str | Path, only: list[str] | None = None,
             train: bool = True, retime_rows: bool = False, header: dict[str, Any] | None = None,
             progress: bool = True) -> list[dict[str, Any]]:
    """What `deeppose compare` and the benchmark script do: take the rows recorded in `results`, run the
    unfinished entries (`train`; every new row published), optionally time every row again, and publish the
    rows (`publish_results`, `header` first).

    Returns:
        The rows, in the spec's order.
    """
    recorded = load_rows(results)
    if train:
        run_comparison(spec_path, out, only, progress, recorded,
                       lambda rows: publish_results(results, spec_path, rows, header))
    rows = collect_rows(spec_path, out, recorded)
    if not rows:
        raise DeepPoseError(results, "no finished comparison entries yet")
    if retime_rows:
        rows = retime(spec_path, rows, progress)
    publish_results(results, spec_path, rows, header)
    return rows
