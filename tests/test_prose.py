"""Issue 34, item 3: prose that sends the reader to another notebook for a function sends them to the right one.

Markdown cells name code in other notebooks as "`name` (notebook NN" or "notebook NN's `name`". Each such reference
must point at a notebook whose code cells define `name` at top level (a function, a class or an assignment)."""
import ast, json, re
from pathlib import Path

NBS = Path(__file__).resolve().parents[1] / 'nbs'
REFERENCES = (re.compile(r"`(?P<name>[A-Za-z_][A-Za-z0-9_.]*)`[^`\n]{0,12}\(notebook (?P<nb>\d\d[a-z]?)\b"),
              re.compile(r"notebook (?P<nb>\d\d[a-z]?)'s `(?P<name>[A-Za-z_][A-Za-z0-9_.]*)`"))


def _cells(path: Path, kind: str) -> list:
    return [''.join(c['source']) for c in json.loads(path.read_text())['cells'] if c['cell_type'] == kind]


def defined_names(path: Path) -> set:
    "Top-level names a notebook's code cells define (functions, classes, assignments; IPython magics skipped)."
    names = set()
    for src in _cells(path, 'code'):
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
        try: tree = ast.parse(code)
        except SyntaxError: continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def wrong_references(nbs: Path) -> list:
    "(notebook, name, the notebook number the prose names) for every reference whose notebook does not define the name."
    by_number = {}
    for p in sorted(nbs.glob('[0-9][0-9]*.ipynb')): by_number.setdefault(p.name[:2], []).append(p)
    defs = {p: defined_names(p) for ps in by_number.values() for p in ps}
    wrong = []
    for p in sorted(nbs.glob('*.ipynb')):
        for text in _cells(p, 'markdown'):
            for pat in REFERENCES:
                for m in pat.finditer(text):
                    name, nb = m['name'].split('.')[-1], m['nb'][:2]
                    if not any(name in defs[q] for q in by_number.get(nb, [])): wrong.append((p.name, m['name'], nb))
    return wrong


def test_prose_names_the_notebook_that_defines_the_function():
    refs = sum(len(pat.findall(t)) for p in NBS.glob('*.ipynb') for t in _cells(p, 'markdown') for pat in REFERENCES)
    assert refs >= 10                                              # the check has something to check
    assert wrong_references(NBS) == []


def test_a_wrong_reference_is_found(tmp_path):
    cell = lambda kind, src: dict(cell_type=kind, metadata={}, source=[src], **({'outputs': [], 'execution_count': None} if kind == 'code' else {}))
    nb = lambda *cells: json.dumps(dict(cells=list(cells), metadata={}, nbformat=4, nbformat_minor=5))
    (tmp_path / '03_a.ipynb').write_text(nb(cell('code', 'def select_attention(m): return m\nLIMIT = 3')))
    (tmp_path / '06_b.ipynb').write_text(nb(cell('code', 'def analyse(): pass')))
    (tmp_path / '07_c.ipynb').write_text(nb(cell('markdown', "`select_attention` (notebook 06) and notebook 03's `LIMIT`; "
                                                             "`select_attention` (notebook 03)")))
    assert wrong_references(tmp_path) == [('07_c.ipynb', 'select_attention', '06')]
