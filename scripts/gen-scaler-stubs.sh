#!/usr/bin/env bash
# Generate the KEDA external scaler's Python stubs from scaler/proto/externalscaler.proto.
#
#   scripts/gen-scaler-stubs.sh [OUT_DIR]     (default: scaler/proto, where the stubs are committed)
#
# Reproducible: always the pinned grpcio-tools (the `test` extra installs it), whose bundled protoc
# (protobuf 4.25 gencode, no runtime-version guard) gives stubs that import with every protobuf
# runtime from 4.25 to 7.x and every grpcio >= 1.60, so the `scaler` extra's minimums hold.
# protoc writes `import externalscaler_pb2`; the stubs live in a package, so that import is
# rewritten to a package-relative one. tests/test_scaler_grpc.py regenerates into a temp dir and
# fails when the committed stubs differ.
set -euo pipefail
GRPCIO_TOOLS_VERSION=1.62.3
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-scaler/proto}

have=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('grpcio-tools'))" 2>/dev/null || true)
if [ "$have" != "$GRPCIO_TOOLS_VERSION" ]; then
  echo "gen-scaler-stubs: needs grpcio-tools==$GRPCIO_TOOLS_VERSION (have: ${have:-none});" \
       "pip install 'grpcio-tools==$GRPCIO_TOOLS_VERSION'" >&2
  exit 2
fi
mkdir -p "$OUT"
"$PYTHON" -m grpc_tools.protoc -Iscaler/proto --python_out="$OUT" --grpc_python_out="$OUT" \
  scaler/proto/externalscaler.proto
"$PYTHON" - "$OUT/externalscaler_pb2_grpc.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
absolute = "import externalscaler_pb2 as externalscaler__pb2\n"
if absolute not in text:
    sys.exit(f"gen-scaler-stubs: {path}: protoc's import line not found; update this script")
open(path, "w", encoding="utf-8").write(text.replace(absolute, "from . import externalscaler_pb2 as externalscaler__pb2\n"))
PY
echo "gen-scaler-stubs: wrote $OUT/externalscaler_pb2.py, $OUT/externalscaler_pb2_grpc.py"
