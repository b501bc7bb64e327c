"""The head-to-head comparison on LSP test, published: runs (or continues) `deeppose compare` on a spec, then
writes benchmarks/results/compare_<name>.json and its accuracy-against-speed plot for BENCHMARKS.md.

    python benchmarks/compare_heads.py --out runs/compare --name heads_mobilenet_v2
    python benchmarks/compare_heads.py ... --report-only   # publish the entries finished so far
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import RESULTS, write_result

from deeppose.compare import collect_rows, format_rows, load_spec, plot_comparison, run_comparison


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="configs/compare/heads_mobilenet_v2.yaml")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    if not args.report_only:
        run_comparison(args.spec, args.out, progress=sys.stderr.isatty())
    rows = collect_rows(args.spec, args.out)
    pending = [e.name for e in spec.entries if e.name not in {r["name"] for r in rows}]
    plot = plot_comparison(rows, RESULTS / f"compare_{args.name}.png", f"LSP test: heads on the same budget "
                                                                       f"({spec.budget_minutes:g} min each)",
                          spec.references)
    path = write_result(f"compare_{args.name}", {
        "dataset": "LSP test (1001-2000), all 14 joints scored", "spec": str(args.spec),
        "budget_minutes": spec.budget_minutes, "cascade_minutes": spec.cascade_minutes, "threads": spec.threads,
        "rows": rows, "references": spec.references, "pending": pending, "plot": plot.name}, " ".join(sys.argv))
    print(format_rows(rows, spec.references))
    print(f"wrote {path} and {plot}; pending: {', '.join(pending) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
