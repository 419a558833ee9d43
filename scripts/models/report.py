"""Markdown tables from the committed manifests (scripts/models/manifests/), for docs/models.md.

    python scripts/models/convert.py --report
"""
from __future__ import annotations

import json
from pathlib import Path


def load_manifests(root: Path) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for p in sorted(Path(root).glob("*/*.json")):
        out.setdefault(p.parent.name, {})[p.stem] = json.loads(p.read_text())
    return out


def mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def markdown_table(root: Path) -> str:
    manifests = load_manifests(root)
    if not manifests:
        return "_no manifests yet: run `make models`_"
    variants = ["fp32", "fp16", "fp16_image", "int8", "pal4", "int4_block32", "w8a8"]
    lines = ["| model | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for model, by_var in manifests.items():
        cells = []
        for v in variants:
            m = by_var.get(v)
            if m is None:
                cells.append("")
            elif "sizes" not in m:
                cells.append("not built here")
            else:
                cells.append(mb(m["sizes"]["package_bytes"]))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Package size in MB (10^6 bytes).", "",
              "| model | ops (fp16, excl. const) | top ops | dynamic dims | ANE-eligible ops (estimate: certain … with conditional) | not ANE-eligible (estimate) | weights |",
              "|---|---|---|---|---|---|---|"]
    for model, by_var in manifests.items():
        m = by_var.get("fp16") or next((x for x in by_var.values() if "op_audit" in x), None)
        if not m or "op_audit" not in m:
            continue
        a = m["op_audit"]
        top = ", ".join(f"{op} {n}" for op, n in a["op_histogram"].items() if op != "const")
        top = ", ".join(top.split(", ")[:6])
        dyn = len(a["dynamic_dims"])
        cov = f"{a['ane'].get('coverage_pct_unconditional')}% … {a['ane']['coverage_pct_estimate']}"
        lines.append(f"| {model} | {a['op_count_excluding_const']} | {top} | {dyn or 'none'} | "
                     f"{cov}% | {', '.join(a['ane']['not_eligible']) or '-'} | {m['weights'].split(':')[0]} |")
    return "\n".join(lines)
