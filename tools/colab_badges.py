#!/usr/bin/env python
"""Put an "Open in Colab" badge, a one-line install hint and an install cell at the top of notebooks (idempotent).

    python tools/colab_badges.py                      # every notebook of nbs/
    python tools/colab_badges.py nbs/04_train.ipynb   # only these
    python tools/colab_badges.py --check [NB ...]     # exit 1 if a notebook lacks its badge or has a stale one

The badge is the notebook's first cell, a markdown cell that links to
`https://colab.research.google.com/github/<user>/<repo>/blob/<branch>/<nbs_path>/<notebook>` (settings.ini's `user`,
`repo` (else `lib_name`), `branch`, `nbs_path`). A first cell that already links to Colab is replaced by the current
text; otherwise the cell is inserted. Every lesson (not `index.ipynb`, the README) also gets, as its second cell, a code
cell that installs the package when it is missing (Colab, a bare Jupyter) together with fastcore, which the lessons'
test cells use; in a checkout it only imports the package. The docs build (tools/make_docs.py) shows the badge image from
`docs/assets/colab-badge.svg`, since the site loads nothing from other hosts.
"""
from __future__ import annotations

import argparse, hashlib, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE_IMG = 'https://colab.research.google.com/assets/colab-badge.svg'
MARK = 'colab.research.google.com/github/'
INSTALL_MARK = '# in Colab or a bare Jupyter'


def settings(root: Path = ROOT) -> dict:
    "settings.ini as nbdev reads it (`nbdev.config.get_config`), as tools/make_docs.py reads it."
    from nbdev.config import get_config
    return dict(get_config(path=Path(root).resolve()).d)


def badge_text(nb_name: str, cfg: dict) -> str:
    "The badge cell's markdown for notebook `nb_name` (a file name such as `04_train.ipynb`)."
    user, repo = cfg['user'], cfg.get('repo') or cfg['lib_name']
    branch, nbs = cfg.get('branch', 'main'), cfg.get('nbs_path', 'nbs').strip('/')
    url = f'https://colab.research.google.com/github/{user}/{repo}/blob/{branch}/{nbs}/{nb_name}'
    git = f"git+https://github.com/{user}/{repo}"
    return (f'[![Open In Colab]({BADGE_IMG})]({url})\n\n'
            f"*Install:* `pip install {cfg['lib_name']}` (in Colab: `!pip install {git}`; a lesson's first code cell does it).")


def install_text(cfg: dict) -> str:
    "The install cell's code: import the package, else pip-install it from the repository (and fastcore, for the test cells)."
    user, repo = cfg['user'], cfg.get('repo') or cfg['lib_name']
    return (f"{INSTALL_MARK}: install the course's library first (a checkout's `make install` has it already)\n"
            f"try: import {cfg['lib_name']}\n"
            f"except ImportError: get_ipython().run_line_magic('pip', 'install -q git+https://github.com/{user}/{repo} fastcore')")


def _src(c) -> str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


def is_badge_cell(c) -> bool:
    return c.get('cell_type') == 'markdown' and MARK in _src(c)


def _ensure(cells: list, k: int, kind: str, text: str, ours, key: str) -> bool:
    "Make cells[k] the `kind` cell holding `text`: refresh it if `ours(cell)` says it is the tool's cell, else insert one; True if it changed."
    if len(cells) > k and ours(cells[k]):
        if _src(cells[k]) == text: return False
        cells[k]['source'] = text.splitlines(keepends=True); return True
    cid = hashlib.sha1(key.encode()).hexdigest()[:8]                             # stable: reruns give the same cell
    cell = dict(cell_type=kind, id=cid, metadata={}, source=text.splitlines(keepends=True))
    cells.insert(k, dict(cell, execution_count=None, outputs=[]) if kind == 'code' else cell)
    return True


def is_install_cell(c) -> bool:
    return c.get('cell_type') == 'code' and _src(c).startswith(INSTALL_MARK)


def apply(nb: dict, nb_name: str, cfg: dict) -> bool:
    "Give `nb` (nbformat dict) its badge cell and (a lesson) its install cell; True if it changed."
    cells = nb['cells']
    changed = _ensure(cells, 0, 'markdown', badge_text(nb_name, cfg), is_badge_cell, f'colab-badge {nb_name}')
    if nb_name == 'index.ipynb': return changed                                      # the README: no code
    return _ensure(cells, 1, 'code', install_text(cfg), is_install_cell, f'install {nb_name}') or changed


def write(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='Add or refresh the "Open in Colab" badge at the top of notebooks.')
    ap.add_argument('notebooks', nargs='*', type=Path, help='notebooks (default: every nbs/*.ipynb)')
    ap.add_argument('--check', action='store_true', help='change nothing; exit 1 if a notebook needs its badge')
    a = ap.parse_args(argv)
    cfg = settings()
    nbs = a.notebooks or sorted((ROOT / cfg.get('nbs_path', 'nbs')).glob('*.ipynb'))
    stale = []
    for p in nbs:
        if not p.exists(): print(f'colab_badges: no notebook {p}', file=sys.stderr); return 2
        nb = json.loads(p.read_text())
        if apply(nb, p.name, cfg):
            stale.append(p)
            if not a.check: write(p, nb)
    if a.check:
        if stale:
            print('colab_badges: missing or stale badge in ' + ', '.join(str(p) for p in stale) +
                  '; run `python tools/colab_badges.py` on them', file=sys.stderr)
            return 1
        print(f'colab_badges: {len(nbs)} notebook(s) have their badge'); return 0
    print(f'colab_badges: updated {len(stale)} of {len(nbs)} notebook(s)' + ''.join(f'\n  {p}' for p in stale))
    return 0


if __name__ == '__main__':
    sys.exit(main())
