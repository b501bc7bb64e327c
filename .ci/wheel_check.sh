#!/usr/bin/env bash
# The wheel as a user gets it: built from the checkout, installed with the runtime lock into a fresh venv outside
# the checkout, then `deeppose --version` and `deeppose predict` on one photo from another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DATA="${DEEPPOSE_DATA:-../shared/data}"
photo="$(cd "$DATA/lsp/images" && pwd)/im1001.jpg"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/deeppose-*.whl)"
echo "wheel: $(basename "$wheel") ($(du -m "$wheel" | cut -f1) MB)"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --require-hashes -r requirements/runtime.lock
"$work/venv/bin/pip" install --quiet --no-deps "$wheel"
cd "$work"
env -u DEEPPOSE_DATA venv/bin/deeppose --version
env -u DEEPPOSE_DATA venv/bin/deeppose predict "$photo" --out "$work/out"
venv/bin/python - "$work/out/im1001.jpg.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
assert record["schema_version"] == 2 and record["person_found"] and record["people"], record
assert all(len(person["joints"]) == 14 for person in record["people"]), record
print(f"predicted {sys.argv[1].rsplit('/', 1)[-1]}: {len(record['people'])} found, best person_score "
      f"{record['person_score']:.2f}")
PY
echo "wheel check passed"
