#!/usr/bin/env bash
# Prints the path of a Python that has numpy and safetensors (pinned), creating
# ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/venv-light on first use.
# Used by the weight scripts, so CI needs PyPI's numpy and safetensors only (no torch).
set -euo pipefail
CACHE=${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}
VENV=$CACHE/venv-light
NUMPY=2.2.6
SAFETENSORS=0.8.0
want="numpy==$NUMPY safetensors==$SAFETENSORS"
if [[ -x $VENV/bin/python && -f $VENV/.pins && "$(cat "$VENV/.pins")" == "$want" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.venv-light.lock"
flock 9
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV" >&2
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
echo "$want" > "$VENV/.pins"
echo "$VENV/bin/python"
