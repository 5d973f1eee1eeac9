"Developer tools: the course-run runner (tools/run_slow.py)."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
