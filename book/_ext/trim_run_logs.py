"""Sphinx extension of the book: chapter pages show results, not run logs.

The executed chapters keep every line their run printed (progress of each loop, cache hits, one line per
student): that is their provenance. When the site is built, each notebook's text outputs lose those lines,
recognised by a bracketed prefix that starts with a letter (``[dm] 120/500 loss=...``, ``[cache] reuse ...``,
``[full seed 0] student 1/1: ...``; a printed list such as ``[1, 2]`` is kept); a cell that printed some keeps
one line saying how many were left out. The repr of the verdict rows that a chapter's last cell returns
(``run.verdicts(...)``, shown above it as the chapter's "What we saw") is left out too. Nothing on disk changes. Used by _config.yml (``sphinx.local_extensions``).
"""
from __future__ import annotations

import json
import re

LOG_LINE = re.compile(r"^\s*\[[A-Za-z][^\]\n]*\] ")


def _verdict_rows(cell: dict, out: dict) -> bool:
    """The value of a cell ending in ``run.verdicts(...)``: the judged rows' repr, which the same call shows as
    the chapter's "What we saw" (and writes to the claims file)."""
    source = cell.get("source", "")
    source = source if isinstance(source, str) else "".join(source)
    text = out.get("data", {}).get("text/plain", "")
    text = text if isinstance(text, str) else "".join(text)
    return out.get("output_type") == "execute_result" and "run.verdicts(" in source and text.startswith("[{'id': ")


def trim_outputs(nb: dict) -> int:
    """Remove run-log lines from the stream outputs of ``nb`` in place, and the repr of the verdict rows a
    ``run.verdicts(...)`` cell returns; returns how many log lines and reprs were removed."""
    removed = 0
    for cell in nb.get("cells", []):
        kept_outputs = []
        dropped = 0
        for out in cell.get("outputs", []):
            if _verdict_rows(cell, out):
                removed += 1
                continue
            if out.get("output_type") != "stream":
                kept_outputs.append(out)
                continue
            text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
            lines = text.splitlines(keepends=True)
            keep = [line for line in lines if not LOG_LINE.match(line) and line.strip()]
            dropped += len([line for line in lines if LOG_LINE.match(line)])
            if keep:
                kept_outputs.append({**out, "text": "".join(keep)})
        if dropped:
            note = f"({dropped} lines of run log not shown here: they are in the executed notebook)\n"
            kept_outputs.insert(0, {"output_type": "stream", "name": "stdout", "text": note})
        removed += dropped
        if "outputs" in cell:
            cell["outputs"] = kept_outputs
    return removed


def _source_read(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = json.loads(source[0])
    if trim_outputs(nb):
        source[0] = json.dumps(nb)


def setup(app):
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
