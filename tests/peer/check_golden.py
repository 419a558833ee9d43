#!/usr/bin/env python3
"""Checks docs/protocol.md and the protocol peer's codec against the golden vectors.

    $ python3 tests/peer/check_golden.py    # from the repository root
    59 golden vectors: decoded, re-encoded and encoded in the page's field order

For every `ipc-schema/golden/<case>.json`:
1. the peer's decoder reads `hex` into exactly `payload`;
2. re-encoding the decoded value gives `hex` byte for byte;
3. encoding `payload` with each map's keys in the order of its table in
   docs/protocol.md (section 8 for messages, section 4 for structures) gives
   `hex`: the page's tables, not the JSON's alphabetical keys, fix the order,
   and a key missing from a table is an error of the page.
Exits non-zero with one line per failure.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import msgpack_codec as mp  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ROW = re.compile(r"^\|\s*`([a-z_0-9]+)`\s*\|\s*([^|]*)\|")


def page_tables(text):
    """{message or structure name: [(field, type), ...]} from the page's tables."""
    tables, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"^### (\w+) — tag \d+", line)
        structure = re.match(r"^\*\*(\w+)\*\* \(map", line)
        if heading or structure:
            current = (heading or structure).group(1)
            tables[current] = []
            inline = re.findall(r"`([a-z_]+): ([A-Za-z]+)`", line)
            tables[current].extend((f, t) for f, t in inline)
            if line.rstrip().endswith("Empty map."):
                current = None
            continue
        if line.startswith("## "):
            current = None
        if current is not None:
            row = ROW.match(line)
            if row and row.group(1) not in ("field", "value"):
                tables[current].append((row.group(1), row.group(2).strip()))
    return tables


def structure_of(type_text, tables):
    """The structure a field's type names (`[NamedTensor]`, `TensorRef`, ...), if any."""
    for word in re.findall(r"[A-Z][A-Za-z]+", type_text):
        if word in tables:
            return word
    return None


def ordered(value, table, tables, where, problems):
    """`value` rebuilt with every map in its table's order."""
    if isinstance(value, list):
        return [ordered(v, table, tables, where, problems) for v in value]
    if not isinstance(value, dict):
        return value
    fields = tables.get(table)
    if fields is None:
        problems.append("%s: a map with no table on the page" % where)
        return value
    names = [f for f, _ in fields]
    for key in value:
        if key not in names:
            problems.append("%s: key %r is not in the table of %s" % (where, key, table))
    out = {}
    for name, type_text in fields:
        if name in value:
            inner = structure_of(type_text, tables)
            out[name] = ordered(value[name], inner, tables, "%s.%s" % (where, name), problems)
    return out


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


def floats_as_floats(value, decoded):
    """JSON writes 1.0 as 1.0 but 0.5e0 may come back an int; follow the decoded types."""
    if isinstance(decoded, float):
        return float(value)
    if isinstance(value, list):
        return [floats_as_floats(v, d) for v, d in zip(value, decoded)]
    if isinstance(value, dict):
        return {k: floats_as_floats(v, decoded.get(k)) for k, v in value.items()}
    return value


def main():
    with open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8") as page:
        tables = page_tables(page.read())
    golden_dir = os.path.join(ROOT, "ipc-schema", "golden")
    problems, cases = [], sorted(f for f in os.listdir(golden_dir) if f.endswith(".json"))
    for case in cases:
        with open(os.path.join(golden_dir, case), encoding="utf-8") as f:
            g = json.load(f)
        frame = bytes.fromhex(g["hex"])
        name = g["name"]
        body = frame[4:]
        if int.from_bytes(frame[:4], "big") != len(body):
            problems.append("%s: length prefix does not match the body" % name)
            continue
        tag, request_id, payload = mp.decode(body)
        if (tag, request_id) != (g["tag"], g["request_id"]):
            problems.append("%s: envelope (%r, %r)" % (name, tag, request_id))
        if not same(payload, floats_as_floats(g["payload"], payload)):
            problems.append("%s: decoded %r, golden %r" % (name, payload, g["payload"]))
        if mp.frame(mp.encode([tag, request_id, payload])) != frame:
            problems.append("%s: re-encoding the decoded value changes the bytes" % name)
        if g["message"] not in tables:
            problems.append("%s: message %s has no table on the page" % (name, g["message"]))
            continue
        value = floats_as_floats(g["payload"], payload)
        by_page = ordered(value, g["message"], tables, name, problems)
        if mp.frame(mp.encode([g["tag"], g["request_id"], by_page])) != frame:
            problems.append("%s: encoding in the page's field order gives other bytes" % name)
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    print("%d golden vectors: decoded, re-encoded and encoded in the page's field order" % len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
