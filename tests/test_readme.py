"The README's Python section runs as written (teacher -> distill -> samples), in an empty folder."
import os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_snippet() -> str:
    text = (ROOT / 'README.md').read_text()
    blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
    code = [b for b in blocks if 'sferd_nb.load(' in b and 'distill(' in b]
    assert len(code) == 1, 'the README has one teacher -> distill -> samples snippet'
    return code[0]


def test_readme_python_snippet_runs_as_written(tmp_path):
    code = _python_snippet()
    assert len([l for l in code.splitlines() if l.strip() and not l.startswith(' ')]) <= 6     # the front door: <= 6 lines
    check = code + ("\nimport torch\nassert images.shape == (16, 3, 32, 32) and run.student.nfe == 1\n"
                    "assert torch.isfinite(images).all() and images.abs().max() <= 1.0 + 1e-6\n"
                    "assert __import__('pathlib').Path('runs/pd_py/samples.png').stat().st_size > 1000\n"
                    "assert run.student.recipe['method'] == 'pd' and len(run) == 2\n")
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('SFERD_NB_DATA', None)
    r = subprocess.run([sys.executable, '-c', check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
