"Developer tools: the course-run runner (tools/run_slow.py)."
import json, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the tools run on nbdev (a dev dependency: `make install` has it; a bare GPU image may not)
pytest.importorskip('nbdev', reason='the developer tools need the dev extras: pip install -e .[dev]')


def _nb(path: Path, cells: list) -> Path:
    nb = dict(nbformat=4, nbformat_minor=5, metadata={},
              cells=[dict(cell_type='code', source=src, metadata={}, outputs=[], execution_count=None) for src in cells])
    path.write_text(json.dumps(nb)); return path


def test_run_slow_runs_slow_cells_skips_eval_false_and_saves_figures(tmp_path):
    nb = _nb(tmp_path / '99_x.ipynb', [
        "#| default_exp x", "budget = 1", "#| slow\nbudget = 7",
        "#| eval: false\nraise RuntimeError('must not run')",
        "import matplotlib.pyplot as plt\nplt.plot([0, budget])\nbudget * 6"])
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(nb), '--figs', str(tmp_path / 'f')],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '\n42\n' in out.stdout                      # the slow cell ran; the last expression is shown
    assert 'must not run' not in out.stdout + out.stderr
    assert len(list((tmp_path / 'f').glob('*.png'))) == 1


def test_run_slow_missing_notebook_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(tmp_path / 'nope.ipynb')],
                         capture_output=True, text=True)
    assert out.returncode != 0 and 'no notebook' in out.stderr


def test_make_docs_executes_a_notebook_and_renders_its_outputs(tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_docs', ROOT / 'tools' / 'make_docs.py')
    md = importlib.util.module_from_spec(spec); spec.loader.exec_module(md)
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    nb = _nb(tmp_path / '98_y.ipynb', [
        "#| hide\nsecret = 'hidden'", "x = 20", "#| slow\nx = 1000",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1]); plt.show()", "print('answer', x + 22)"])
    out = md.render(nb, tmp_path / 'site', run=True)
    page = out.read_text()
    assert 'answer 42' in page and 'secret' not in page and '#|' not in page
    assert (tmp_path / 'site' / '98_y_files' / 'fig1.png').exists() and '98_y_files/fig1.png' in page
    assert 'answer 42' not in md.render(nb, tmp_path / 'site2').read_text()      # without --execute: stored outputs only


def test_api_reference_shows_patched_methods_in_their_class():
    "Trainer's methods are added over several notebook cells with `@patch`; the API page lists them under Trainer."
    griffe = pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    ext = griffe.load_extensions(f"{ROOT / 'tools' / 'docs_griffe.py'}:PatchedMethods")
    mod = griffe.load('sferd_nb.train', search_paths=[str(ROOT)], extensions=ext)
    members = mod['Trainer'].members
    assert {'fit', 'train_step', 'update_ema', 'after_step', 'resume', 'save', 'ckpt_path'} <= set(members)
    assert not {'fit', 'train_step', 'resume'} & set(mod.members)
    assert members['fit'].path == 'sferd_nb.train.Trainer.fit'
