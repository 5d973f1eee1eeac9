#!/usr/bin/env python
"""Build the course's docs site (Quarto-free replacement for `nbdev_docs`): notebooks -> markdown -> mkdocs-material.

    python tools/make_docs.py --execute     # `make docs`: run the notebooks (default cells), build site/
    python tools/make_docs.py               # the same from the notebooks as committed (no outputs): fast
    python tools/make_docs.py --no-site     # only write the markdown pages (build/docs/pages/)

Stages, all under the build folder (`build/docs/` by default, gitignored):

1. **execute** (`--execute`): every notebook runs in `nbs/` exactly as `nbdev_test` runs it — the same directive
   parse (nbdev's own `NBProcessor`) and the same skip rule (`skipped`: `#| eval: false`, `slow`, `gpu`). The
   executed notebook is written to `build/docs/executed/NAME.ipynb`, keyed by a hash of the notebook and of the
   library, so a second build with nothing changed does not run it again. Notebooks run in parallel (`--jobs`).
2. **render** each notebook to `build/docs/pages/NAME.md` (`render`), following these rules:
   - `#| hide` (and `exporthide`) cells are dropped; other `#|` directive lines are removed from the code shown;
   - `#| export`/`exports`/`exporti` cells go into an "exported code" block naming what they define, open when the cell
     is at most `OPEN_EXPORT_LINES` lines (a lesson's core function, e.g. `pd_target`), collapsed otherwise (the API
     reference shows the same code with signatures); a signature written one parameter per line with its docments counts
     as one line (`shown_lines`);
   - `#| code-fold: true` (Quarto's directive; `show`: open) collapses a cell's code under a disclosure titled by
     `#| code-summary: ...` (default "code") and shows its outputs below it: checks with set-up, helper code;
   - **test cells** are collapsed under a "tests" disclosure. The rule (`is_test_cell`): a code cell that exports
     nothing and shows no figure, whose top-level statements include at least one check — an `assert`, a call
     of a `test_*` function (fastcore.test: `test_eq`, `test_close`, `test_fail`, ...), or a
     `with pytest.raises/warns(...)` / `ExceptionExpected` block — and whose checks cover at least half of its
     non-blank, non-comment lines;
   - `#| slow` cells (and `#| gpu` cells) are shown, not run, in a callout "course run, not executed in the docs
     build"; beside it the notebook's committed course-run results: files in `nbs/images/` or `nbs/results/` whose
     name starts with the notebook's number (`07_...`), attached to the slow cell that names it (`Renderer.names`: its
     file name, or for a figure the file it is written beside), else to the last slow cell before the markdown that
     shows it (else to the notebook's last slow cell, else to a section at the end of the page). A figure that the
     notebook's markdown already shows appears as a thumbnail linked to it (the markdown's own `images/...` links
     work in the site: the folder is copied); a result it does not show is rendered in the callout (PNG/JPG/SVG as
     an image, CSV as a table, JSON as tables (`json_tables`) with the whole file collapsed below, TXT as text);
   - outputs are cleaned (`clean_text`): ANSI escape codes, carriage-return redraws and tqdm bars, Python warnings
     (the `file:line: XWarning:` line and its source line), ipywidgets outputs and reprs (`VBox(children=...)`), and
     absolute paths (the repository root becomes a relative path, temporary folders `<tmp>`, site-packages
     `<site-packages>`);
   - display math `$$...$$` that sits inside a paragraph is moved onto its own block so that arithmatex renders it;
     links to notebooks (`05_distill.ipynb`) point at their pages, links to other repository files at the repository.
3. **API reference**: one page per module of the package, discovered from `sferd_nb/_modidx.py` (and the package
   folder), rendered from docstrings and signatures by mkdocstrings-python; `api/index.md` lists the modules and the
   curated top-level API (`sferd_nb._API`).
4. **site**: `mkdocs.yml` (committed template: theme, extensions, search) plus the nav (index, the notebooks in course
   order, the pages of `docs/`, the API) and `site_url` from settings.ini's `doc_host` + `doc_baseurl` is written to
   `build/docs/mkdocs.yml` and built with `mkdocs build --strict` into `site/`. Math is rendered by KaTeX, vendored
   in `docs/assets/katex/` (its `README.txt` says how to refresh it): nothing is loaded from a CDN at view time, and
   Material's privacy plugin (`assets_fetch: false` in `mkdocs.yml`) fails the strict build on any script, style, font
   or image from another host.
"""
from __future__ import annotations

import argparse, ast, base64, csv, hashlib, io, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'
NBS = ROOT / 'nbs'
BUILD = ROOT / 'build' / 'docs'
SITE = ROOT / 'site'
RESULT_DIRS = ('images', 'results')                    # folders of nbs/ holding committed course-run results
EXPORT_FLAGS = {'export', 'exports', 'exporti'}
HIDE_FLAGS = {'hide', 'exporthide'}
OPEN_EXPORT_LINES = 15                                 # exported cells this short are shown open (the lesson's core functions)
COLAB_BADGE = 'https://colab.research.google.com/assets/colab-badge.svg'   # tools/colab_badges.py; docs/assets/colab-badge.svg

# ----------------------------------------------------------------------------------------------------------------
# notebooks: nbdev's directive parse and nbdev_test's skip rule (shared with tools/run_slow.py)

def read_cells(nb_path: Path):
    "The notebook with nbdev's parse of each code cell's leading `#|` directives in `cell.directives_` (as nbdev_test reads it)."
    from nbdev.process import NBProcessor
    return NBProcessor(Path(nb_path), process=True).nb

def directives(cell) -> dict: return getattr(cell, 'directives_', None) or {}

def skipped(cell, flags=()) -> bool:
    "nbdev_test's rule: a cell does not run if it is not code, is `#| eval: false`, or carries one of `flags`."
    if cell.cell_type != 'code': return True
    d = directives(cell)
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

def notebooks(nbs: Path = NBS) -> list:
    "The course in order: `index.ipynb`, then `NN*.ipynb` sorted by name (00_data, 00_runs, ..., 04_train, 04b_io, ..., 13_cli)."
    nbs = Path(nbs)
    idx = [nbs / 'index.ipynb'] if (nbs / 'index.ipynb').exists() else []
    return idx + sorted((p for p in nbs.glob('*.ipynb') if re.match(r'\d\d', p.name)), key=lambda p: p.name)

# ----------------------------------------------------------------------------------------------------------------
# stage 1: execute (cached, parallel)

def lib_hash(root: Path = ROOT) -> str:
    h = hashlib.sha256()
    for p in sorted((root / 'sferd_nb').glob('*.py')): h.update(p.name.encode()); h.update(p.read_bytes())
    return h.hexdigest()

def _clean_nb_dict(nb) -> dict:
    "A plain nbformat dict of an execnb notebook (drops execnb's `*_` attributes)."
    cells = []
    for c in nb.cells:
        d = {k: v for k, v in dict(c).items() if not k.endswith('_')}
        d.setdefault('metadata', {})
        if d['cell_type'] == 'code': d.setdefault('outputs', []); d.setdefault('execution_count', None)
        cells.append(d)
    return dict(nbformat=4, nbformat_minor=5, metadata=dict(nb.get('metadata', {})), cells=cells)

def run_one(nb_path: str, out_path: str, key: str):
    "Execute one notebook and write it with its outputs (`--run-one`: a fresh interpreter per notebook)."
    import torch; torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    d = _clean_nb_dict(execute(Path(nb_path))); d['metadata']['sferd_docs_key'] = key
    tmp = Path(out_path).with_suffix('.tmp'); tmp.write_text(json.dumps(d, indent=1)); os.replace(tmp, out_path)

def execute_all(nbs: list, out_dir: Path, jobs: int = 2, force: bool = False) -> dict:
    "Execute the notebooks into `out_dir` (reusing an executed copy whose key matches); {stem: path}; raises on errors."
    out_dir.mkdir(parents=True, exist_ok=True)
    lh, done, todo = lib_hash(), {}, []
    for p in nbs:
        key = hashlib.sha256(p.read_bytes() + lh.encode()).hexdigest()
        out = out_dir / p.name
        if not force and out.exists():
            try: ok = json.loads(out.read_text())['metadata'].get('sferd_docs_key') == key
            except (ValueError, KeyError): ok = False
            if ok: done[p.stem] = out; print(f'  {p.name}: executed copy is up to date', flush=True); continue
        todo.append((str(p), str(out), key))
    errors = []
    if todo:                                   # each notebook in a fresh interpreter, `jobs` at a time
        from concurrent.futures import ThreadPoolExecutor
        env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'),
               'PYTHONPATH': os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])}
        def one(args):
            t0 = time.time()
            r = subprocess.run([sys.executable, __file__, '--run-one', *args], env=env, capture_output=True, text=True)
            return Path(args[0]).name, time.time() - t0, (r.stdout + r.stderr)[-4000:] if r.returncode else None
        with ThreadPoolExecutor(max(1, jobs)) as ex:
            for name, secs, err in ex.map(one, todo):
                print(f'  {name}: ran in {secs:.0f} s' + (' -- FAILED' if err else ''), flush=True)
                if err: errors.append(f'{name}:\n{err}')
                else: done[Path(name).stem] = out_dir / name
    if errors: raise RuntimeError('notebooks failed in the docs build:\n\n' + '\n\n'.join(errors))
    return done

# ----------------------------------------------------------------------------------------------------------------
# stage 2: render one notebook to markdown

_ANSI = re.compile(r'\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]')
_BARE_ANSI = re.compile(r'(?<![\w\]])\[(?:\d+(?:;\d+)*)?[ABCDGHJKmK]')       # an escape whose ESC byte was lost: "[2K"
_WARN = re.compile(r'^\s*(?:\S+:\d+: )?(?:\w+\.)*\w*Warning: ')
_TQDM = re.compile(r'\d+%\|[^|]*\|\s*\d+(?:\.\d+)?[kMG]?/\d|^\s*\d+it \[|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]\s*$')
_WIDGET = re.compile(r'^\s*(?:VBox|HBox|Box|GridBox|FloatProgress|IntProgress|HTML|HTMLMath|Label|Output|Button|'
                     r'Dropdown|Tab|Accordion|Image)\((?:children|value|layout|description|max|outputs)=')
_TMP = re.compile(r'(?:/private)?/(?:tmp|var/folders/[^\s/]+/[^\s/]+/T)/[^\s/\'"),\]]+')
_SITE_PKG = re.compile(r'/[^\s\'"]*?/(?:site|dist)-packages')

def strip_paths(t: str, root: Path = ROOT) -> str:
    "Absolute paths out of an output: the repository root -> relative, temp folders -> `<tmp>`, site-packages."
    for r in {str(root), str(root.resolve())}:
        t = t.replace(r + '/', '').replace(r, '.')
    t = _TMP.sub('<tmp>', t)
    t = _SITE_PKG.sub('<site-packages>', t)
    home = os.path.expanduser('~')
    if home not in ('/', ''): t = re.sub(re.escape(home) + r'(?=/)', '~', t)
    return t

def clean_text(t: str, root: Path = ROOT) -> str:
    "An output's text as a reader should see it: no ANSI codes, redraws, tqdm bars, warnings, widget reprs or absolute paths."
    t = _ANSI.sub('', t)
    lines, out, skip_next = t.replace('\r\n', '\n').split('\n'), [], False
    for l in lines:
        l = l.rsplit('\r', 1)[-1]                                 # a carriage-return redraw keeps its last state
        l = _BARE_ANSI.sub('', l)
        if skip_next:                                             # the source line a warning prints under itself
            skip_next = False
            if l.startswith((' ', '\t')): continue
        if _WARN.search(l): skip_next = True; continue
        if _TQDM.search(l) or _WIDGET.match(l): continue
        out.append(l.rstrip())
    return strip_paths('\n'.join(out), root).strip('\n')

_TEST_CALL = re.compile(r'^(?:test_\w*|assert\w*)$')
_TEST_CTX = {'raises', 'warns', 'ExceptionExpected', 'assertRaises', 'deprecated_call'}

def _call_name(node) -> str:
    f = node.func if isinstance(node, ast.Call) else None
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''

def _is_check(stmt) -> bool:
    if isinstance(stmt, ast.Assert): return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call): return bool(_TEST_CALL.match(_call_name(stmt.value)))
    if isinstance(stmt, ast.With):
        return any(_call_name(i.context_expr) in _TEST_CTX for i in stmt.items)
    return False

def test_stats(code: str) -> tuple:
    "(number of checks, lines they cover, code lines) of a cell's source (directive lines already removed)."
    try: tree = ast.parse(code)
    except SyntaxError: return 0, 0, 1
    lines = code.split('\n')
    code_lines = {i + 1 for i, l in enumerate(lines) if l.strip() and not l.strip().startswith('#')}
    covered, n = set(), 0
    for s in tree.body:
        if _is_check(s):
            n += 1 if not isinstance(s, ast.With) else 1 + sum(isinstance(x, ast.Expr) for x in s.body)
            covered |= set(range(s.lineno, (s.end_lineno or s.lineno) + 1))
    return n, len(covered & code_lines), max(1, len(code_lines))

def is_test_cell(cell, code: str | None = None) -> bool:
    "The tests rule (see the module docstring): no export, no figure, >= 1 check, checks cover >= half the code lines."
    if cell.cell_type != 'code' or EXPORT_FLAGS & directives(cell).keys(): return False
    if any({'image/png', 'image/svg+xml', 'image/jpeg'} & o.get('data', {}).keys() for o in cell.get('outputs', [])): return False
    n, cov, tot = test_stats(_code(cell) if code is None else code)
    return n > 0 and 2 * cov >= tot

def _code(cell) -> str:
    return '\n'.join(l for l in _src(cell).split('\n') if not l.lstrip().startswith('#|')).strip('\n')

def _defined_names(code: str) -> list:
    try: tree = ast.parse(code)
    except SyntaxError: return []
    names = []
    for s in tree.body:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(s.name)
        elif isinstance(s, (ast.Assign, ast.AnnAssign)):
            for t in (s.targets if isinstance(s, ast.Assign) else [s.target]):
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name) and not n.id.startswith('_')]
    return names

def shown_lines(code: str) -> int:
    """The cell's lines, each function signature counted as one: docments spread a signature over a line per parameter.
    (Blank or comment lines between a signature and its body, and a nested function's decorators, are not counted either.)"""
    n = len(code.splitlines())
    try: tree = ast.parse(code)
    except SyntaxError: return n
    for f in ast.walk(tree):
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.body:
            n -= max(0, f.body[0].lineno - f.lineno - 1)          # the lines between `def` and the body's first line
    return n

def _indent(text: str, n: int = 4) -> str:
    return '\n'.join((' ' * n + l) if l.strip() else '' for l in text.split('\n'))

def _fence(code: str, lang: str = 'python') -> str:
    ticks = '```'
    while ticks in code: ticks += '`'
    return f'{ticks}{lang}\n{code}\n{ticks}'

_CODE_SPLIT = re.compile(r'(^ {0,3}(?:```|~~~)[^\n]*\n.*?^ {0,3}(?:```|~~~)[ \t]*$|`[^`\n]+`)', re.M | re.S)
_DISPLAY = re.compile(r'\$\$(.+?)\$\$', re.S)

def fix_display_math(md: str) -> str:
    "Put every `$$...$$` on a block of its own (blank lines around, the paragraph's indent), as arithmatex needs."
    parts = _CODE_SPLIT.split(md)
    for i in range(0, len(parts), 2):                               # even parts are outside code
        seg = parts[i]
        def repl(m, seg=seg):
            ls = seg.rfind('\n', 0, m.start()) + 1
            indent = re.match(r'[ \t]*', seg[ls:]).group(0)
            return f'\n\n{indent}$$\n{_indent_lines(m.group(1).strip(), indent)}\n{indent}$$\n\n{indent}'
        seg = _DISPLAY.sub(repl, seg)
        parts[i] = re.sub(r'\n[ \t]*\n(?:[ \t]*\n)+', '\n\n', seg)     # collapse the blank runs made above
    return re.sub(r'\n[ \t]+$', '', ''.join(parts)).strip('\n')

_LIST_ITEM = re.compile(r'^( *)(?:[-*+]|\d+[.)]) +(?=\S)')

def fix_list_indent(md: str) -> str:
    """A list item's continuation blocks indented to the item's text (CommonMark: `1. x` then 3 spaces) get the
    4 spaces Python-Markdown needs, so that a `$$` block or paragraph inside an item stays in it."""
    out, item, fence, shift = [], None, None, 0
    for l in md.split('\n'):
        if fence:                                                  # inside a fenced block: move it with its opener
            out.append(' ' * shift + l if l.strip() else l)
            if l.strip().startswith(fence): fence = None
            continue
        m = _LIST_ITEM.match(l)
        if m: item = (len(m.group(1)), m.end()); out.append(l); continue
        shift = 0
        if item is not None and l.strip():
            ind = len(l) - len(l.lstrip(' '))
            if ind < item[1] and not (out and out[-1].strip()): item = None       # a paragraph after the list
            elif item[1] <= ind < item[0] + 4: shift = item[0] + 4 - item[1]
        f = re.match(r'^\s*(`{3,}|~{3,})', l)
        if f: fence = f.group(1)
        out.append(' ' * shift + l)
    return '\n'.join(out)

def _indent_lines(body: str, indent: str) -> str:
    return '\n'.join(indent + l.strip() for l in body.split('\n'))

def _cell(v) -> str:
    "A JSON value in a markdown table cell: floats to 4 significant digits, lists of numbers shortened, '|' escaped."
    if isinstance(v, float): t = f'{v:.4g}'
    elif isinstance(v, list): t = ', '.join(_cell(x) for x in v[:6]) + (', ...' if len(v) > 6 else '')
    else: t = str(v)
    return t.replace('|', '\\|').replace('\n', ' ')

def _scalarish(v) -> bool:
    return v is None or isinstance(v, (int, float, str, bool)) or (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))

_FIRST_COLS = ('name', 'method', 'steps', 'nfe', 'fid_mean', 'fid', 'fid_real', 'fid_second', 'recall', 'recall_real', 'is_mean',
               'denoising_l2_mean', 'distill_seconds')

def json_tables(obj, max_rows: int = 40) -> str:
    """A course run's JSON as markdown tables a reader can scan: each list of records (e.g. `rows`) as a table of its
    scalar fields, the other scalar leaves as a `key | value` table (dotted paths); nested records of records as tables too."""
    tables, leaves = [], []
    def records(title, recs):
        cols = [c for c in dict.fromkeys(c for r in recs for c in r) if all(_scalarish(r.get(c)) for r in recs)]
        first = [c for c in _FIRST_COLS if c in cols]
        cols = (first + [c for c in cols if c not in first])[:9]
        if not cols: return
        head = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
        body = ['| ' + ' | '.join(_cell(r.get(c, '')) for c in cols) + ' |' for r in recs[:max_rows]]
        tables.append(f'**{title}**\n\n' + '\n'.join(head + body))
    def walk(path, v, depth=0):
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            if all('rows' in x for x in v):                      # a list of runs, each with its rows
                for i, x in enumerate(v): walk(f'{path}[{i}]', x, depth + 1)
            else: records(path or 'records', v)
        elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()) and \
                all(any(_scalarish(y) for y in x.values()) for x in v.values()) and (len(v) > 1 or depth > 1) and depth > 0:
            records(path, [dict(name=k, **{kk: vv for kk, vv in x.items() if kk != 'name'}) for k, x in v.items()])
        elif isinstance(v, dict):
            for k, x in v.items(): walk(f'{path}.{k}' if path else str(k), x, depth + 1)
        elif _scalarish(v) and path and len(leaves) < max_rows: leaves.append((path, v))
    walk('', obj)
    if leaves: tables.insert(0, '| key | value |\n|---|---|\n' + '\n'.join(f'| `{k}` | {_cell(v)} |' for k, v in leaves))
    return '\n\n'.join(tables) or '(no table: see the whole file below)'

class Renderer:
    "Render one notebook (an execnb notebook, executed or not) to a markdown page; see the module docstring."
    def __init__(self, nb_path: Path, out_dir: Path, cfg: dict | None = None, root: Path = ROOT,
                 known_pages: set | None = None):
        self.nb_path, self.out_dir, self.root = Path(nb_path), Path(out_dir), root
        self.stem = self.nb_path.stem
        self.cfg = cfg or {}
        self.known_pages = known_pages
        self.n_img = 0
        self.img_dir = self.out_dir / f'{self.stem}_files'

    # ---- course-run results
    def results(self) -> list:
        "Committed course-run results of this notebook: `nbs/{images,results}/NN_*` (paths relative to nbs/)."
        num = re.match(r'(\d\d[a-z]?)_', self.stem)
        if not num: return []
        found = []
        for d in RESULT_DIRS:
            folder = self.nb_path.parent / d
            if folder.is_dir():
                found += sorted(f'{d}/{p.name}' for p in folder.iterdir() if p.is_file() and p.name.startswith(num.group(1) + '_'))
        return found

    # ---- markdown cells
    def link(self, target: str) -> str:
        "A link of a markdown cell, rewritten for the site."
        if target == COLAB_BADGE: return 'assets/colab-badge.svg'         # vendored: the site loads nothing from other hosts
        if re.match(r'^[a-z][\w+.-]*:|^#|^/', target): return target
        path, _, frag = target.partition('#')
        frag = f'#{frag}' if frag else ''
        if path.endswith('.ipynb') and '/' not in path.replace('../nbs/', '').replace('nbs/', ''):
            stem = Path(path).stem
            return f'{stem}.md{frag}' if self.known_pages is None or stem in self.known_pages else target
        p = (self.nb_path.parent / path).resolve()
        if path.startswith(tuple(f'{d}/' for d in RESULT_DIRS)) and p.exists(): return target   # copied into the site
        if p.exists() and p.parent == (self.root / 'docs').resolve() and p.suffix == '.md': return p.name + frag
        git = self.cfg.get('git_url')
        if git and p.exists():
            try: rel = p.relative_to(self.root.resolve())
            except ValueError: return target
            kind = 'tree' if p.is_dir() else 'blob'
            return f"{git.rstrip('/')}/{kind}/{self.cfg.get('branch', 'main')}/{rel.as_posix()}{frag}"
        return target

    def markdown(self, src: str, used: set) -> str:
        parts = _CODE_SPLIT.split(src)
        for i in range(0, len(parts), 2):
            def img(m):
                alt, tgt = m.group(1), m.group(2)
                new = self.link(tgt)
                if new.split('#')[0] in self._results:
                    used.add(new); anchor = f'{{ #{self.anchor(new)} }}'
                else: anchor = ''
                return f'![{alt}]({new}){anchor}'
            seg = re.sub(r'!\[([^\]]*)\]\(([^)\s]+)\)', img, parts[i])
            seg = re.sub(r'(?<!!)\[([^\]]*)\]\(([^)\s]+)\)', lambda m: f'[{m.group(1)}]({self.link(m.group(2))})', seg)
            parts[i] = seg
        return fix_display_math(fix_list_indent(''.join(parts)))

    @staticmethod
    def names(code: str, result: str) -> float:
        """How closely a slow cell's `code` names `result`: inf for its file name in single quotes; for a figure, the length
        of the longest single-quoted file stem that begins its own (`'12_x_seed1.json'` names `12_x_seed1_samples.png`,
        written beside it); 0 for neither (a name built in an f-string is not seen: the position rule places it)."""
        if f"'{Path(result).name}'" in code: return float('inf')
        if Path(result).suffix.lower() not in ('.png', '.jpg', '.jpeg', '.svg', '.gif', '.webp'): return 0
        stem = Path(result).stem
        return max((len(q) for q in (Path(f).stem for f in re.findall(r"'([\w.-]+\.\w+)'", code)) if stem.startswith(q + '_')), default=0)

    def anchor(self, result: str) -> str:
        return 'result-' + re.sub(r'[^\w-]+', '-', Path(result).stem).strip('-')

    # ---- outputs
    def figure(self, f: Path) -> str:
        "A notebook figure in the page, linked to itself: a click opens it at full size (`.fig-zoom`, docs/assets/extra.css)."
        src = f'{self.img_dir.name}/{f.name}'
        return f'[![figure {self.n_img} of {self.stem}]({src})]({src}){{ .fig-zoom target="_blank" }}'

    # ---- outputs
    def outputs(self, cell) -> list:
        parts = []
        for o in cell.get('outputs', []) or []:
            ot, data = o.get('output_type'), o.get('data', {}) or {}
            if 'application/vnd.jupyter.widget-view+json' in data: continue
            if ot == 'error':
                tb = clean_text('\n'.join(o.get('traceback', [])) or f"{o.get('ename')}: {o.get('evalue')}", self.root)
                parts.append('!!! failure "error"\n\n' + _indent(_fence(tb, 'text'))); continue
            if ot == 'stream':
                t = clean_text(_src({'source': o.get('text', '')}), self.root)
                if t.strip(): parts.append(_fence(t, 'text'))
                continue
            for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg')):
                if mime in data:
                    self.img_dir.mkdir(parents=True, exist_ok=True); self.n_img += 1
                    f = self.img_dir / f'fig{self.n_img}.{ext}'
                    f.write_bytes(base64.b64decode(_src({'source': data[mime]})))
                    parts.append(self.figure(f)); break
            else:
                if 'image/svg+xml' in data:
                    self.img_dir.mkdir(parents=True, exist_ok=True); self.n_img += 1
                    f = self.img_dir / f'fig{self.n_img}.svg'; f.write_text(_src({'source': data['image/svg+xml']}))
                    parts.append(self.figure(f))
                elif 'text/markdown' in data:
                    parts.append(strip_paths(_src({'source': data['text/markdown']}), self.root))
                elif 'text/html' in data and not re.search(r'<script', _src({'source': data['text/html']}), re.I):
                    h = strip_paths(_src({'source': data['text/html']}), self.root)
                    parts.append(f'<div class="nb-output" markdown="0">\n{h.strip()}\n</div>')
                elif 'text/plain' in data:
                    t = clean_text(_src({'source': data['text/plain']}), self.root)
                    if t.strip() and not _WIDGET.match(t): parts.append(_fence(t, 'text'))
        return parts

    # ---- the page
    def slow_callout(self, cell, code: str, flag: str, results: list) -> str:
        if flag == 'gpu':
            title = 'GPU run, not executed in the docs build'
            why = ('This cell needs a CUDA GPU: `make test-gpu` runs it (`nbdev_test --flags gpu`); the docs build skips '
                   'it, as `nbdev_test` does by default.')
        else:
            title = 'course run, not executed in the docs build'
            why = (f'This cell belongs to the notebook\'s *course run* (`python tools/run_slow.py nbs/{self.nb_path.name}` '
                   'or `nbdev_test --flags slow`); the docs build skips it, as `nbdev_test` does by default, so the '
                   'outputs on this page come from the smaller default budget.')
        body = [why, _fence(code)]
        body += self.outputs(cell)                                  # a course-run output stored in the notebook, if any
        if results: body.append('**Committed course-run results:**\n\n' + '\n'.join(results))
        return f'!!! info "{title}"\n\n' + _indent('\n\n'.join(body))

    def result_blocks(self, res: list, shown: set) -> list:
        "Markdown for committed results: a link for those the prose shows, the result itself for the others."
        out = []
        for r in res:
            name, f = Path(r).name, self.nb_path.parent / r
            if r in shown:                          # a thumbnail here, the full figure where the prose shows it
                out.append(f'- [`{name}`](#{self.anchor(r)}) (shown in the text of this page)\n\n'
                           f'    [![{name}]({r}){{ width="320" }}](#{self.anchor(r)})\n'); continue
            suf = f.suffix.lower()
            if suf in ('.png', '.jpg', '.jpeg', '.svg', '.gif', '.webp'):
                out.append(f'- `{name}`\n\n    ![{name}]({r})\n')
            elif suf == '.csv':
                rows = list(csv.reader(io.StringIO(f.read_text())))
                if rows:
                    tab = ['| ' + ' | '.join(map(_cell, rows[0])) + ' |', '|' + '---|' * len(rows[0])]
                    tab += ['| ' + ' | '.join(map(_cell, r_)) + ' |' for r_ in rows[1:61]]
                    out.append(f'- `{name}`\n\n' + _indent('\n'.join(tab)) + '\n')
            elif suf == '.json':
                try: obj = json.loads(f.read_text())
                except ValueError: obj = None
                if obj is None: out.append(f'- `{name}`'); continue
                t = json.dumps(obj, indent=1)
                raw = '??? note "the whole file"\n\n' + _indent(_fence(t if len(t) < 4000 else t[:4000] + '\n...', 'json'))
                out.append(f'- `{name}`\n\n' + _indent(json_tables(obj) + '\n\n' + raw) + '\n')
            elif suf in ('.txt', '.md'):
                t = f.read_text()
                t = t if len(t) < 4000 else t[:4000] + '\n...'
                out.append(f'- `{name}`\n\n' + _indent(_fence(t, 'text')) + '\n')
            else:
                out.append(f'- `{name}`')
        return out

    def render(self, nb) -> str:
        self._results = self.results()
        cells = [c for c in nb.cells if not (HIDE_FLAGS & directives(c).keys())]
        # which results the prose shows, and which slow cell each belongs to (the last slow cell before it)
        shown, owner, last_slow, slow_ids = set(), {}, None, []
        for i, c in enumerate(cells):
            d = directives(c)
            if c.cell_type == 'code' and ({'slow', 'gpu'} & d.keys()): last_slow = i; slow_ids.append(i)
            if c.cell_type == 'markdown':
                for m in re.finditer(r'!?\[[^\]]*\]\(([^)\s#]+)', _src(c)):
                    if m.group(1) in self._results and m.group(1) not in shown:
                        shown.add(m.group(1)); owner[m.group(1)] = last_slow
        unshown = [r for r in self._results if r not in shown]
        per_cell = {}
        for r in self._results:
            score, o = max(((self.names(_src(cells[i]), r), -i) for i in slow_ids), default=(0, None))   # the cell naming it
            o = -o if score else owner.get(r)                                # (the first of equals), else by position
            if o is None: o = slow_ids[-1] if slow_ids and r in unshown else (slow_ids[0] if slow_ids else None)
            per_cell.setdefault(o, []).append(r)
        parts, used = [], set()
        for i, c in enumerate(cells):
            d = directives(c)
            if c.cell_type == 'markdown':
                parts.append(self.markdown(_src(c), used)); continue
            if c.cell_type != 'code': continue
            code = _code(c)
            echo = d.get('echo:', ['true'])[0].lower() != 'false'
            show_out = d.get('output:', ['true'])[0].lower() != 'false'
            outs = self.outputs(c) if show_out else []
            if {'slow', 'gpu'} & d.keys():
                res = self.result_blocks(per_cell.get(i, []), shown)
                parts.append(self.slow_callout(c, code, 'gpu' if 'gpu' in d else 'slow', res)); continue
            if not code and not outs: continue
            if EXPORT_FLAGS & d.keys():
                names = _defined_names(code)
                what = ', '.join(f'`{n}`' for n in names[:6]) + (', ...' if len(names) > 6 else '') if names else 'imports and set-up'
                label = 'exported code' + (' (internal)' if 'exporti' in d else '')
                body = '\n\n'.join([_fence(code)] + outs)
                short = bool(names) and shown_lines(code) <= OPEN_EXPORT_LINES   # a short core function: shown open
                parts.append(f'???{"+" if short else ""} abstract "{label}: {what}"\n\n' + _indent(body)); continue
            fold = d.get('code-fold:', ['false'])[0].lower()
            if fold in ('true', 'show') and code and echo:          # Quarto's code-fold: the code collapsed, outputs shown
                summary = ' '.join(d.get('code-summary:', [])) or 'code'
                parts.append(f'???{"+" if fold == "show" else ""} note "{summary}"\n\n' + _indent(_fence(code)))
                parts += outs; continue
            if is_test_cell(c, code):
                n = test_stats(code)[0]
                body = '\n\n'.join(([_fence(code)] if echo else []) + outs)
                parts.append(f'??? success "tests: {n} check{"s" if n != 1 else ""}"\n\n' + _indent(body)); continue
            if code and echo: parts.append(_fence(code))
            parts += outs
        leftover = per_cell.get(None, [])
        if leftover:
            parts.append('## Committed course-run results\n\n' + '\n'.join(self.result_blocks(leftover, shown)))
        return '\n\n'.join(p for p in parts if p.strip()) + '\n'

def render(nb_path: Path, out_dir: Path, run: bool = False, nb=None, cfg: dict | None = None,
           known_pages: set | None = None, root: Path = ROOT) -> Path:
    "Write `out_dir/STEM.md` for one notebook (executed first if `run`, or from `nb` with its outputs); returns its path."
    nb_path = Path(nb_path)
    if nb is None: nb = execute(nb_path) if run else read_cells(nb_path)
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    r = Renderer(nb_path, out_dir, cfg, root, known_pages)
    if r.img_dir.exists(): shutil.rmtree(r.img_dir)
    out = out_dir / f'{nb_path.stem}.md'
    out.write_text(r.render(nb))
    return out

def with_outputs(nb_path: Path, executed: Path):
    "nbdev's parse of `nb_path` with the outputs of its executed copy (same cells, same order)."
    nb = read_cells(nb_path)
    ex = json.loads(Path(executed).read_text())['cells']
    if len(ex) != len(nb.cells): raise RuntimeError(f'{executed} does not match {nb_path}: rebuild with --force')
    for c, e in zip(nb.cells, ex):
        if c.cell_type == 'code': c['outputs'] = e.get('outputs', [])
    return nb

# ----------------------------------------------------------------------------------------------------------------
# stage 3: API reference

def settings(root: Path = ROOT) -> dict:
    "settings.ini as nbdev reads it (`nbdev.config.get_config`: the same keys and values, nbdev's defaults filled in)."
    from nbdev.config import get_config
    return dict(get_config(path=Path(root).resolve()).d)

def site_url(cfg: dict) -> str:
    "settings.ini's `doc_host` + `doc_baseurl`, e.g. https://sferd-nb.github.io/sferd_nb/."
    host, base = cfg.get('doc_host', '').rstrip('/'), cfg.get('doc_baseurl', '').strip('/')
    return f'{host}/{base}/' if base else f'{host}/'

def modules(root: Path = ROOT, lib: str = 'sferd_nb') -> list:
    "The package's public modules: `_modidx.py`'s (nbdev's index of exported modules) plus any other `*.py` in the package."
    names = set()
    idx = root / lib / '_modidx.py'
    if idx.exists():
        tree = ast.parse(idx.read_text())
        d = next(ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign))
        names |= {m for m in d.get('syms', {}) if m.count('.') == 1}
    names |= {f'{lib}.{p.stem}' for p in (root / lib).glob('*.py') if not p.stem.startswith('_')}
    return sorted(names)

def module_notebooks(nbs: list) -> dict:
    "{module name: [notebook stems]}: the notebook whose `#| default_exp` makes it, then any that append to it (`#| export name`)."
    made, added = {}, {}
    for p in nbs:
        code = [''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code']
        for s in code:
            for m in re.findall(r'^#\|[ \t]*default_exp[ \t]+([\w.]+)', s, flags=re.M): made[m] = p.stem
            for m in re.findall(r'^#\|[ \t]*export[ \t]+([\w.]+)[ \t]*$', s, flags=re.M): added.setdefault(m, []).append(p.stem)
    out = {m: [nb] for m, nb in made.items()}
    for m, stems in added.items(): out[m] = list(dict.fromkeys(out.get(m, []) + stems))   # the maker first, each notebook once
    return out

def top_level_api(root: Path = ROOT, lib: str = 'sferd_nb') -> dict:
    "The curated top-level API (`sferd_nb._API`: name -> module), if the package has one."
    init = root / lib / '__init__.py'
    if not init.exists(): return {}
    for s in ast.parse(init.read_text()).body:
        if isinstance(s, ast.Assign) and any(getattr(t, 'id', '') == '_API' for t in s.targets):
            try: return ast.literal_eval(s.value)
            except ValueError: return {}
    return {}

def module_doc(root: Path, mod: str) -> str:
    p = root / (mod.replace('.', '/') + '.py')
    try: doc = ast.get_docstring(ast.parse(p.read_text())) or ''
    except (OSError, SyntaxError): doc = ''
    return doc.strip().split('\n\n')[0].replace('\n', ' ')

def write_api(pages: Path, mods: list, nb_of: dict, root: Path = ROOT, lib: str = 'sferd_nb') -> list:
    "api/MODULE.md per module (mkdocstrings `:::`) and api/index.md; returns the nav entries."
    api = pages / 'api'; api.mkdir(parents=True, exist_ok=True)
    nav, rows = [], []
    for m in mods:
        short = m.split('.', 1)[1]
        links = ', '.join(f'[{nb}](../{nb}.md)' for nb in nb_of.get(short, []))
        src = f"Exported from the notebook{'s' if ', ' in links else ''} {links}. " if links else ''
        (api / f'{short}.md').write_text(f'# `{m}`\n\n{src}\n\n::: {m}\n')
        nav.append({short: f'api/{short}.md'})
        rows.append(f'| [`{m}`]({short}.md) | {links} | {module_doc(root, m)} |')
    top = top_level_api(root, lib)
    idx = [f'# API reference\n\nOne page per module of `{lib}`, generated from the docstrings and signatures of the '
           f'code the notebooks export. Each module is taught by the notebook beside it.\n',
           '| module | notebook | what |', '|---|---|---|', *rows]
    if top:
        idx += ['', f'## The top-level API\n\n`import {lib}` gives these names (imported from their module on first use):\n',
                '| name | module |', '|---|---|']
        idx += [f'| [`{n}`]({m}.md#{lib}.{m}.{n}) | `{lib}.{m}` |' for n, m in top.items()]
    (api / 'index.md').write_text('\n'.join(idx) + '\n')
    return [{'Overview': 'api/index.md'}] + nav

# ----------------------------------------------------------------------------------------------------------------
# stage 4: the site

def page_title(md_path: Path) -> str:
    "The page's first level-1 heading; a `# ...` line inside a fenced code block (a comment) is not one."
    text = re.sub(r'^(```|~~~).*?^\1', '', md_path.read_text(), flags=re.M | re.S)
    m = re.search(r'^# (.+)$', text, re.M)
    return re.sub(r'[`*]', '', m.group(1)).strip() if m else md_path.stem

def nav_label(stem: str, title: str) -> str:
    num = re.match(r'(\d\d[a-z]?)_', stem)
    short = re.split(r'[:—]| - ', title)[0].strip()
    return f'{num.group(1)} {short}' if num else short

def mkdocs_config(build: Path, pages: Path, site: Path, nav: list, cfg: dict, root: Path = ROOT) -> Path:
    "build/mkdocs.yml: the committed template `mkdocs.yml` plus nav, site_url, absolute folders."
    import yaml
    conf = yaml.safe_load((root / 'mkdocs.yml').read_text())
    conf.update(docs_dir=str(pages), site_dir=str(site), nav=nav, site_url=site_url(cfg))
    for p in conf.get('plugins', []):
        if isinstance(p, dict) and 'mkdocstrings' in p:
            py = p['mkdocstrings'].setdefault('handlers', {}).setdefault('python', {})
            py['paths'] = [str(root)]
            ext = Path(__file__).resolve().parent / 'docs_griffe.py'
            py.setdefault('options', {})['extensions'] = [f'{ext}:HideUndocumentedInstanceAttributes', f'{ext}:Docments']
    out = build / 'mkdocs.yml'
    out.write_text('# generated by tools/make_docs.py from mkdocs.yml: edit that file, not this one\n' +
                   yaml.safe_dump(conf, sort_keys=False, allow_unicode=True))
    return out

def build(execute_nbs: bool = False, build_dir: Path = BUILD, site_dir: Path = SITE, jobs: int = 2, force: bool = False,
          make_site: bool = True, strict: bool = True, root: Path = ROOT, only: list | None = None) -> Path:
    "The whole pipeline (module docstring); returns the site folder (or the pages folder with make_site=False)."
    t0 = time.time()
    cfg = settings(root)
    build_dir, site_dir = Path(build_dir).resolve(), Path(site_dir).resolve()
    pages = build_dir / 'pages'
    if pages.exists(): shutil.rmtree(pages)
    pages.mkdir(parents=True)
    nbs = notebooks(root / 'nbs')
    if only: nbs = [p for p in nbs if p.stem in only or p.name in only]
    executed = {}
    if execute_nbs:
        print(f'executing {len(nbs)} notebooks ({jobs} at a time) into {build_dir / "executed"} ...', flush=True)
        executed = execute_all(nbs, build_dir / 'executed', jobs=jobs, force=force)
        print(f'  notebooks done in {time.time() - t0:.0f} s', flush=True)
    known = {p.stem for p in nbs}
    nb_nav, t1 = [], time.time()
    for p in nbs:
        nb = with_outputs(p, executed[p.stem]) if p.stem in executed else read_cells(p)
        md = render(p, pages, nb=nb, cfg=cfg, known_pages=known, root=root)
        title = page_title(md)
        if p.stem == 'index':
            md.rename(pages / 'index.md'); nb_nav.insert(0, {'Home': 'index.md'})
        else:
            nb_nav.append({nav_label(p.stem, title): md.name})
    for d in RESULT_DIRS:
        if (root / 'nbs' / d).is_dir(): shutil.copytree(root / 'nbs' / d, pages / d)
    extra = []
    for f in sorted((root / 'docs').glob('*.md')):
        shutil.copy(f, pages / f.name); extra.append({nav_label(f.stem, page_title(pages / f.name)): f.name})
    if (root / 'docs' / 'assets').is_dir(): shutil.copytree(root / 'docs' / 'assets', pages / 'assets')
    api_nav = write_api(pages, modules(root), module_notebooks(nbs), root)
    nav = nb_nav[:1] + [{'Course': nb_nav[1:]}] + ([{'Design': extra}] if extra else []) + [{'API reference': api_nav}]
    print(f'rendered {len(nbs)} notebooks, {len(extra)} pages of docs/ and {len(api_nav)} API pages into {pages} '
          f'({time.time() - t1:.1f} s)', flush=True)
    if not make_site: return pages
    conf = mkdocs_config(build_dir, pages, site_dir, nav, cfg, root)
    t2 = time.time()
    cmd = [sys.executable, '-m', 'mkdocs', 'build', '-q', '-f', str(conf), '--clean'] + (['--strict'] if strict else [])
    r = subprocess.run(cmd, cwd=root, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: raise SystemExit(f'make_docs: mkdocs build failed (exit {r.returncode}); config {conf}')
    print(f'built the site in {site_dir} ({time.time() - t2:.0f} s mkdocs, {time.time() - t0:.0f} s in all); '
          f'it will be served at {site_url(cfg)}', flush=True)
    return site_dir

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description='Build the docs site: notebooks -> markdown -> mkdocs-material (see the module docstring).')
    ap.add_argument('--execute', action='store_true', help='run each notebook first (default cells, as nbdev_test) so pages show outputs')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('DOCS_JOBS', 2)), help='notebooks run at once (default 2)')
    ap.add_argument('--force', action='store_true', help='run the notebooks again even if their executed copies are up to date')
    ap.add_argument('--build-dir', type=Path, default=BUILD, help=f'build folder (default {BUILD.relative_to(ROOT)})')
    ap.add_argument('--site-dir', type=Path, default=SITE, help=f'the HTML site (default {SITE.relative_to(ROOT)})')
    ap.add_argument('--no-site', action='store_true', help='write the markdown pages only (no mkdocs build)')
    ap.add_argument('--no-strict', action='store_true', help='do not fail on mkdocs warnings (broken links, ...)')
    ap.add_argument('--only', nargs='*', help='build only these notebooks (stems), for a quick look')
    ap.add_argument('--run-one', nargs=3, metavar=('NB', 'OUT', 'KEY'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_one: run_one(*a.run_one); sys.exit()
    try:
        build(a.execute, a.build_dir, a.site_dir, a.jobs, a.force, not a.no_site, not a.no_strict, only=a.only)
    except RuntimeError as e:
        sys.exit(f'make_docs: {e}')
