#!/usr/bin/env python
"""Render the course notebooks to a markdown docs site under docs/ (Quarto-free replacement for nbdev_docs).

Each `nbs/NN_name.ipynb` becomes `docs/site/NN_name.md` (markdown cells, code cells without `#|` directives, their
outputs; `#| hide` cells skipped; images extracted next to the page), plus `docs/site/index.md` from the README.

    python tools/make_docs.py             # render the notebooks' stored outputs (the repo keeps them cleaned: none)
    python tools/make_docs.py --execute   # run each notebook first (as nbdev_test does: `slow`/`gpu` cells skipped),
                                          # so the pages carry its figures and printed numbers (`make docs`)
"""
import argparse, base64, re, shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'

def read_cells(nb_path: Path):
    "The notebook with nbdev's parse of each code cell's leading `#|` directives in `cell.directives_` (as nbdev_test reads it)."
    from nbdev.process import NBProcessor
    return NBProcessor(Path(nb_path), process=True).nb

def skipped(cell, flags=()) -> bool:
    "nbdev_test's rule: a cell does not run if it is not code, is `#| eval: false`, or carries one of `flags`."
    if cell.cell_type != 'code': return True
    d = getattr(cell, 'directives_', None) or {}
    return d.get('eval:', [''])[0].lower() == 'false' or bool(set(flags) & d.keys())

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def execute(nb_path: Path, skip_flags=('slow', 'gpu')):
    "Run a notebook's code cells in order (not `eval: false` or flagged ones) in its folder; returns the notebook with outputs."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    nb_path = Path(nb_path).resolve()
    nb = read_cells(nb_path)
    with working_directory(nb_path.parent):
        CaptureShell(nb_path).run_all(nb, exc_stop=True, preproc=lambda c: skipped(c, skip_flags))
    return nb

def render(nb_path: Path, out_dir: Path, run: bool = False) -> Path:
    nb = execute(nb_path) if run else read_cells(nb_path)
    stem, parts, n_img = Path(nb_path).stem, [], 0
    img_dir = out_dir / f'{stem}_files'
    for c in nb['cells']:
        if {'hide', 'exporthide'} & (getattr(c, 'directives_', None) or {}).keys(): continue
        lines = _src(c).split('\n')
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
        if c['cell_type'] == 'markdown': parts.append(body); continue
        if not body: continue
        parts.append('```python\n' + body + '\n```')
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'image/png' in data:
                img_dir.mkdir(parents=True, exist_ok=True); n_img += 1
                f = img_dir / f'fig{n_img}.png'; f.write_bytes(base64.b64decode(data['image/png']))
                parts.append(f'![]({img_dir.name}/{f.name})')
            elif o.get('text') or 'text/plain' in data:
                t = o.get('text') or data['text/plain']
                parts.append('```\n' + (''.join(t) if isinstance(t, list) else t).rstrip() + '\n```')
    out = out_dir / f'{stem}.md'
    out_dir.mkdir(parents=True, exist_ok=True)
    out.write_text('\n\n'.join(parts) + '\n')
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description='Render the course notebooks to markdown pages under docs/site/.')
    ap.add_argument('--execute', action='store_true', help='run each notebook first so the pages show its outputs')
    a = ap.parse_args()
    site = DOCS / 'site'
    if site.exists(): shutil.rmtree(site)
    site.mkdir(parents=True)
    pages = []
    for p in sorted((ROOT / 'nbs').glob('[0-9][0-9]_*.ipynb')):
        if a.execute: print(f'running {p.name} ...', flush=True)
        pages.append(render(p, site, a.execute))
    if (ROOT / 'nbs' / 'images').is_dir(): shutil.copytree(ROOT / 'nbs' / 'images', site / 'images')   # course-run figures
    toc = '\n'.join(f'- [{p.stem}]({p.name})' for p in pages)
    readme = (ROOT / 'README.md').read_text()
    (site / 'index.md').write_text(readme + '\n\n## Pages\n\n' + toc + '\n')
    print(f'wrote {len(pages) + 1} pages to {site}')
