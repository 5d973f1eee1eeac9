#!/usr/bin/env python
"""Convert between a percent-format script and a notebook (a convenience for authors).

    python tools/pct2nb.py nbs_src/01_x.py nbs/01_x.ipynb     # script -> notebook
    python tools/pct2nb.py nbs/01_x.ipynb /tmp/01_x.py         # notebook -> script

Cells start with `# %%` (code) or `# %% [markdown]` (markdown; each line prefixed by `# `).
The notebooks in `nbs/` are the source of truth; this tool only helps write and edit them.
"""
import json, sys
from pathlib import Path

def _meta():
    return {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}

def py2nb(src: str) -> dict:
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        lines = buf[:]
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind == 'markdown':
            lines = [l[2:] if l.startswith('# ') else (l[1:] if l.startswith('#') else l) for l in lines]
        text = '\n'.join(lines)
        c = {"cell_type": kind, "metadata": {}, "source": text}
        if kind == 'code': c.update(execution_count=None, outputs=[])
        cells.append(c)
    for line in src.splitlines():
        if line.startswith('# %%'):
            flush(); buf = []
            kind = 'markdown' if '[markdown]' in line else 'code'
        else:
            if kind is None: continue
            buf.append(line)
    flush()
    for c in cells:
        s = c['source'].split('\n')
        c['source'] = [l + '\n' for l in s[:-1]] + [s[-1]]
    return {"cells": cells, "metadata": _meta(), "nbformat": 4, "nbformat_minor": 5}

def nb2py(nb: dict) -> str:
    out = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'markdown':
            out.append('# %% [markdown]\n' + '\n'.join(('# ' + l) if l else '#' for l in src.split('\n')))
        else:
            out.append('# %%\n' + src)
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    a, b = map(Path, sys.argv[1:3])
    if a.suffix == '.py':
        b.write_text(json.dumps(py2nb(a.read_text()), indent=1, ensure_ascii=False) + '\n')
    else:
        b.write_text(nb2py(json.loads(a.read_text())))
