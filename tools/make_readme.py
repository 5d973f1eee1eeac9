#!/usr/bin/env python
"""Build README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines lack).

`--check` exits 1 when README.md is stale. Markdown cells are copied; code cells become fenced
blocks (with their text outputs); cells marked `#| hide` are skipped and `#|` directives dropped.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = '<!-- Generated from nbs/index.ipynb by `make readme`; do not edit by hand. -->\n\n'

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = _src(c)
        lines = src.split('\n')
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.replace(' ', '') in ('#|hide', '#|exporthide') for d in directives): continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
        if c['cell_type'] == 'markdown': parts.append(body)
        elif c['cell_type'] == 'code' and body:
            parts.append('```python\n' + body + '\n```')
            for o in c.get('outputs', []):
                txt = o.get('text') or o.get('data', {}).get('text/plain')
                if txt: parts.append('```\n' + (''.join(txt) if isinstance(txt, list) else txt).rstrip('\n') + '\n```')
    return HEADER + '\n\n'.join(parts).rstrip() + '\n'

if __name__ == '__main__':
    out = render()
    readme = ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != out:
            sys.exit('ERROR: README.md is stale against nbs/index.ipynb; run `make readme` and commit it.')
        print('README.md matches nbs/index.ipynb')
    else:
        readme.write_text(out); print(f'wrote {readme}')
