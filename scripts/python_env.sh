#!/usr/bin/env bash
# Prints the path of the Python of a pinned virtual environment, creating it on first use:
#   scripts/python_env.sh NAME   ->  ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/venv-NAME/bin/python
# NAME is one of scripts/requirements/NAME.txt:
#   light        numpy + safetensors: weight scripts and fixtures (CI)
#   coremltools  coremltools' MIL builder without torch: tiny test packages, demo packages (CI)
#   torch        torch, torchvision, timm, transformers, coremltools, onnxruntime: model
#                conversion (`make models`), PyTorch fixtures and `make bench`; about 3 GB
#                to download (PyPI's Linux torch is the CUDA build), never needed by CI
# Idempotent: a warm environment whose pins match returns at once; a changed
# requirements file reinstalls. Concurrent callers serialise on a lock file.
set -euo pipefail
NAME=${1:?usage: python_env.sh NAME}
HERE=$(cd "$(dirname "$0")" && pwd)
REQ=$HERE/requirements/$NAME.txt
[[ -f $REQ ]] || { echo "python_env.sh: no requirements file $REQ" >&2; exit 2; }
CACHE=${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}
VENV=$CACHE/venv-$NAME
want=$(sha256sum "$REQ" | cut -d' ' -f1)
ready() { [[ -x $VENV/bin/python && -f $VENV/.pins && "$(cat "$VENV/.pins")" == "$want" ]]; }
if ready; then echo "$VENV/bin/python"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.venv-$NAME.lock"
flock 9
if ! ready; then
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" >&2
  echo "python_env.sh: installing $NAME environment (pins in scripts/requirements/$NAME.txt)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
  echo "$want" > "$VENV/.pins"
fi
echo "$VENV/bin/python"
