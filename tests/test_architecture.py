"The contracts of docs/architecture.md that the code itself can check: the module graph, and where defaults live."
import importlib.util, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('module_graph', ROOT / 'tools' / 'module_graph.py')
mg = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(mg)


def test_module_graph_has_no_loop_no_upward_import_and_no_library_import_of_cli():
    g = mg.graph()
    assert mg.problems(g) == []
    assert g['cli']['notebook'] == '13_cli' and g['runs']['notebook'] == '00_runs'
    for m, info in g.items():                                   # the command line is a layer on top
        if m not in ('cli', '__main__'): assert 'cli' not in info['top'] + info['lazy'], m
    assert g['__main__']['top'] == ['cli']


def test_module_graph_rules_catch_what_they_forbid():
    node = lambda nb, top=(), lazy=(): dict(notebook=nb, top=list(top), lazy=list(lazy), registry=[])
    bad = mg.problems({'a': node('01_a', ['b']), 'b': node('01_b', ['a']), 'cli': node('13_cli'),
                       'c': node('02_c', lazy=['cli']), 'd': node('04_d', ['e']), 'e': node('04b_e')})
    assert any(p.startswith('import cycle: a -> b -> a') or p.startswith('import cycle: b -> a -> b') for p in bad), bad
    assert any('library module c imports cli' in p for p in bad), bad
    assert any('d (04_d) imports e of a later notebook (04b_e)' in p for p in bad), bad
    assert mg.level('04b_io') > mg.level('04_train') and mg.level('00_data') == mg.level('00_runs')


def test_architecture_page_shows_the_graph_of_the_code():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'module_graph.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_dash_m_runs_every_command():
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'distill', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'sferd-distill' in r.stdout and '--method' in r.stdout, r.stderr
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'nope'], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and "unknown command 'nope'" in r.stderr, r.stderr
    for old in ('train', 'distill', 'data', 'demo', 'metrics', 'analysis'):   # the library modules are not scripts
        assert "__name__ == '__main__'" not in (ROOT / 'sferd_nb' / f'{old}.py').read_text(), old
