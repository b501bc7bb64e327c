"""The head-to-head comparison on LSP test, published: runs (or continues) `deeppose compare` on a spec with
benchmarks/results/compare_<name>.json as its results file, so the rows committed there carry the comparison on
from one machine to the next (finished entries are skipped), and its accuracy-against-speed plot beside it.

    python benchmarks/compare_heads.py --out runs/compare --name heads_mobilenet_v2
    python benchmarks/compare_heads.py ... --report-only   # publish the entries finished so far
    python benchmarks/compare_heads.py ... --retime        # time every row again (idle machine)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import RESULTS, result_header

from deeppose.eval.comparison import format_rows
from deeppose.train import compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="configs/compare/heads_mobilenet_v2.yaml")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--only", nargs="*", help="entry names to run (default all)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--retime", action="store_true")
    args = parser.parse_args()
    name = f"compare_{args.name}"
    results = RESULTS / f"{name}.json"
    rows = compare.carry_on(args.spec, args.out, results, args.only, train=not (args.report_only or args.retime),
                            retime_rows=args.retime, header=result_header(name, " ".join(sys.argv)),
                            progress=sys.stderr.isatty())
    print(format_rows(rows, compare.load_spec(args.spec).references))
    print(f"wrote {results} and its plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
