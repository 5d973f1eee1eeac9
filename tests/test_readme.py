"""The README's Python section: teacher -> distill -> samples in at most 6 lines. It runs as written, in an empty folder
with only the wheel installed, in tests/test_packaging.py (`test_readme_python_snippet_from_the_wheel`), with the checks of `README_CHECKS`."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the snippet's run must leave behind (appended to the snippet when tests/test_packaging.py runs it)
README_CHECKS = ("\nimport torch, pathlib\nassert images.shape == (16, 3, 32, 32) and run.student.nfe == 1\n"
                 "assert torch.isfinite(images).all() and images.abs().max() <= 1.0 + 1e-6\n"
                 "assert pathlib.Path('runs/pd_py/samples.png').stat().st_size > 1000\n"
                 "assert run.student.recipe['method'] == 'pd' and len(run) == 2 and run.models[0].steps == 2\n")


def python_snippet() -> str:
    blocks = re.findall(r'```python\n(.*?)```', (ROOT / 'README.md').read_text(), flags=re.S)
    code = [b for b in blocks if 'sferd_nb.load(' in b and 'distill(' in b]
    assert len(code) == 1, 'the README has one teacher -> distill -> samples snippet'
    return code[0]


def test_readme_python_snippet_is_the_front_door_in_six_lines():
    code = python_snippet()
    assert len([l for l in code.splitlines() if l.strip() and not l.startswith(' ')]) <= 6
    compile(code + README_CHECKS, 'README.md', 'exec')                       # and it parses, checks included
    assert 'import sferd_nb' in code and 'run.student.sample(' in code
