#!/usr/bin/env bash
# Prints the path of a Python that has numpy and safetensors (pinned): the weight
# scripts' environment, so CI needs PyPI's numpy and safetensors only (no torch).
exec "$(dirname "$0")/python_env.sh" light
