"Issue 13, packaging: `python -m build` makes an sdist and a wheel that install in a fresh venv and find the course assets offline; the demo and the README run from the wheel."
import os, subprocess, sys, sysconfig
from pathlib import Path

import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]


def _clean_env(**extra) -> dict:
    "The environment a pip user has: no PYTHONPATH into the checkout, no SFERD_NB_DATA."
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'SFERD_NB_DATA', 'PYTHONHOME')}
    return dict(env, OMP_NUM_THREADS='1', MPLBACKEND='Agg', **extra)


def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def build_dists(out: Path) -> tuple:
    "(sdist, wheel) built by `python -m build` (the wheel from the sdist, as PyPI users get it), offline (no isolation)."
    pytest.importorskip('build', reason='`pip install build` (in the dev extra)')
    _run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', out, REPO], cwd=REPO, env=_clean_env())
    sdist, wheel = sorted(out.glob('*.tar.gz')), sorted(out.glob('*.whl'))
    assert len(sdist) == 1 and len(wheel) == 1, list(out.iterdir())
    return sdist[0], wheel[0]


def make_venv(root: Path, dist: Path) -> Path:
    """A fresh venv at `root` with `dist` (wheel or sdist) installed; returns its bin/ folder (`bin / 'python'`,
    `bin / 'sferd-demo'`, ...). Nothing is downloaded: the dependencies (torch, ...) are this interpreter's, made
    visible by a .pth file (the checkout's editable install is not: .pth files are not read from such a path)."""
    _run([sys.executable, '-m', 'venv', '--without-pip', root])
    vpy = root / 'bin' / 'python'
    site = Path(_run([vpy, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    ours = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']} | \
           {p for p in sys.path if Path(p).name in ('site-packages', 'dist-packages')}   # a --system-site-packages parent too
    (site / '_deps_from_parent.pth').write_text('\n'.join(sorted(ours)) + '\n')
    _run([sys.executable, '-m', 'pip', '--python', vpy, 'install', '--no-deps', '--no-index', '--no-build-isolation',
          '--disable-pip-version-check', '-q', dist], env=_clean_env())
    return root / 'bin'


CHECK = r'''
import json, os, sys
from pathlib import Path
from importlib.metadata import requires, version
from packaging.requirements import Requirement
import sferd_nb
from sferd_nb.data import data_dir, load_cifar10_subset
from sferd_nb.metrics import load_classifier
from sferd_nb.io import load_denoiser
venv = Path(sys.argv[1]).resolve()
assert Path(sferd_nb.__file__).resolve().is_relative_to(venv), sferd_nb.__file__         # the installed copy
assert data_dir() == Path(sferd_nb.__file__).resolve().parent / '_assets', data_dir()
for r in map(Requirement, requires('sferd_nb')):                                     # what install_requires promises
    if r.marker is None or r.marker.evaluate({'extra': ''}): assert version(r.name) in r.specifier or not r.specifier, r
den = load_denoiser(data_dir() / 'teachers' / 'cifar10_uncond')
x = load_cifar10_subset()['x_test'][:2]
ext = load_classifier()
found = str(data_dir())
os.environ['SFERD_NB_DATA'] = str(Path.cwd() / 'nowhere')
try: load_cifar10_subset(); raise SystemExit('no error for a missing SFERD_NB_DATA')
except FileNotFoundError as e: assert 'SFERD_NB_DATA' in str(e), e
from sferd_nb.data import course_dir                                                # the course runs' results, shipped
assert course_dir() == Path(sferd_nb.__file__).resolve().parent / '_assets' / 'course', course_dir()
assert json.loads((course_dir() / 'results' / '08b_course_run.json').read_text())['readings']
assert (course_dir() / 'images' / '10_fooling.png').is_file()
assert course_dir(write=True) == Path('sferd_nb_course') and (Path.cwd() / 'sferd_nb_course' / 'results').is_dir()   # never the package
print(json.dumps(dict(data=found, params=sum(p.numel() for p in den.parameters()), extractor=ext.name)))
'''


def check_installed(bin_dir: Path, cwd: Path) -> str:
    "Run the installed package in an empty directory: it must find its assets and load the course teacher."
    cwd.mkdir(parents=True, exist_ok=True)
    assert not any(cwd.iterdir())
    r = _run([bin_dir / 'python', '-c', CHECK, bin_dir.parent], cwd=cwd, env=_clean_env())
    _run([bin_dir / 'sferd-demo', '--help'], cwd=cwd, env=_clean_env())                 # console scripts installed
    return r.stdout


def readme_blocks() -> tuple:
    "The README's quick-start commands and its Python snippet, as written."
    import re
    text = (REPO / 'README.md').read_text()
    quick = [b for b in re.findall(r'```bash\n(.*?)```', text, flags=re.S) if b.startswith('# quick start')]
    snippet = [b for b in re.findall(r'```python\n(.*?)```', text, flags=re.S) if 'sferd_nb.load(' in b]
    assert len(quick) == 1 and len(snippet) == 1
    return quick[0].splitlines()[1:], snippet[0]


def nothing_written_inside(bin_dir: Path) -> None:
    written = [p for p in (bin_dir.parent / 'lib').rglob('*') if p.name in ('eval', 'eval.json', 'sferd_run.json', 'runs')]
    assert not written, written                                            # nothing inside the installed package


# One wheel for the whole run (built once, under a lock: `python -m build` writes into the checkout) and one venv per
# pytest worker, shared by the tests below, which pytest-xdist spreads over the cores.
@pytest.fixture(scope='session')
def dists(tmp_path_factory) -> tuple:
    from filelock import FileLock
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'): root = root.parent                 # the folder all workers share
    out = root / 'sferd_nb_dists'
    with FileLock(str(root / 'sferd_nb_dists.lock')):
        if not (out / 'built').exists():
            build_dists(out); (out / 'built').write_text('')
    return sorted(out.glob('*.tar.gz'))[0], sorted(out.glob('*.whl'))[0]


@pytest.fixture(scope='session')
def wheel_bin(dists, tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp('venv') / 'wheel', dists[1])


def test_wheel_and_sdist_hold_the_assets_and_install(dists, wheel_bin, tmp_path):
    sdist, wheel = dists
    names = __import__('zipfile').ZipFile(wheel).namelist()
    for f in ('sferd_nb/_assets/cifar10_subset.npz', 'sferd_nb/_assets/README.md', 'sferd_nb/_assets/classifier/model.safetensors',
              'sferd_nb/_assets/teachers/cifar10_uncond/model.safetensors', 'sferd_nb/_assets/teachers/cifar10_cond/config.json',
              'sferd_nb/_assets/course/results/08b_course_run.json', 'sferd_nb/_assets/course/images/10_fooling.png'):
        assert f in names, f
    assert not [n for n in names if n.startswith('data/')]                      # nothing outside the package
    out = check_installed(wheel_bin, tmp_path / 'empty1')
    assert '_assets' in out and 'standin-cifar10-cnn' in out, out
    out = check_installed(make_venv(tmp_path / 'venv_sdist', sdist), tmp_path / 'empty2')   # the sdist builds and installs
    assert '_assets' in out, out


def test_quick_demo_from_the_wheel(wheel_bin, tmp_path):
    "The issue's must-show: `pip install sferd_nb && sferd-demo --quick` in an empty directory (pd only, to keep CI short)."
    r = _run([wheel_bin / 'sferd-demo', '--quick', '--methods', 'pd', '--out', 'demo', '--device', 'cpu', '--no-progress'],
             cwd=tmp_path, env=_clean_env())
    assert (tmp_path / 'demo' / 'report.md').is_file() and 'PD' in r.stdout and '_assets' in (tmp_path / 'demo' / 'report.md').read_text(), r.stdout
    nothing_written_inside(wheel_bin)


def test_readme_quick_start_from_the_wheel(wheel_bin, tmp_path):
    "Issue 31: the README's quick-start commands, verbatim, in an empty folder, for a pip user."
    env = _clean_env(PATH=f"{wheel_bin}:{os.environ['PATH']}")
    for line in readme_blocks()[0]:
        _run(['bash', '-c', line], cwd=tmp_path, env=env)
    assert (tmp_path / 'runs' / 'pd' / 'stage0_1steps' / 'model.safetensors').is_file()
    assert (tmp_path / 'eval_stage0_1steps' / 'eval.json').is_file()
    nothing_written_inside(wheel_bin)


def test_readme_python_snippet_from_the_wheel(wheel_bin, tmp_path):
    "The README's Python snippet as written, then what it must leave (test_readme.README_CHECKS), with only the wheel installed."
    from test_readme import README_CHECKS
    _run([wheel_bin / 'python', '-c', readme_blocks()[1] + README_CHECKS], cwd=tmp_path, env=_clean_env())
    assert (tmp_path / 'runs' / 'pd_py' / 'samples.png').is_file()
    nothing_written_inside(wheel_bin)


# the notebooks named in argv run their default cells with the installed package (`python -c RUN_NOTEBOOKS NB...`; also
# tools/notebooks_from_wheel.py); exit status 1 if one fails
RUN_NOTEBOOKS = ("import sys; from pathlib import Path; import sferd_nb; from nbdev.test import test_nb\n"
                 "assert 'site-packages' in sferd_nb.__file__ and '/nbs/' not in sferd_nb.__file__, sferd_nb.__file__\n"
                 "ok = [test_nb(Path(f).resolve(), skip_flags=['slow', 'gpu'])[0] for f in sys.argv[1:]]\n"
                 "sys.exit(0 if all(ok) else 'a notebook failed')")
NOTEBOOKS_FROM_THE_WHEEL = ('00_data.ipynb', '11_demo.ipynb')   # course_dir's lesson and a reader of a committed course run (the cheapest two)


def test_notebooks_run_alone_from_the_wheel(wheel_bin, tmp_path):
    """Issue 34: two lesson notebooks copied alone into an empty folder (what Colab or a bare Jupyter has) run their default
    cells with only the wheel installed; committed results come from the package (`data.course_dir`), not from a checkout."""
    import shutil
    for n in NOTEBOOKS_FROM_THE_WHEEL: shutil.copy(REPO / 'nbs' / n, tmp_path / n)
    _run([wheel_bin / 'python', '-c', RUN_NOTEBOOKS, *NOTEBOOKS_FROM_THE_WHEEL], cwd=tmp_path, env=_clean_env())
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == '.ipynb') == sorted(NOTEBOOKS_FROM_THE_WHEEL)
    nothing_written_inside(wheel_bin)


needs_make = pytest.mark.skipif(not __import__('shutil').which('make'), reason='no make on this machine')


def _make(*args, **kw):
    """`make ARGS` in the checkout as a user types it: no variables inherited from a `make` this suite may run under (make
    exports its command-line variables, e.g. `make test-oldest OLDEST_PYTHON_BIN=...`, to the tests it runs)."""
    import re
    own = set(re.findall(r'^(\w+) *[?:]?=', (REPO / 'Makefile').read_text(), flags=re.M))      # the Makefile's variables
    env = {k: v for k, v in os.environ.items() if k not in own | {'MAKEFLAGS', 'MFLAGS', 'GNUMAKEFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES'}}
    return subprocess.run(['make', '--no-print-directory', *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, **kw)


@needs_make
def test_make_refuses_a_python_older_than_it_needs(tmp_path):
    """`make` on a Python older than the tools it installs need says so in one line and creates no venv (instead of pip's
    page of unsatisfiable versions): played here with this interpreter against MIN_PYTHON=99.0."""
    venv = tmp_path / 'venv'
    r = _make(f'{venv}/bin/python', f'PYTHON={sys.executable}', f'VENV={venv}', 'MIN_PYTHON=99.0')   # the venv's rule only
    assert r.returncode != 0 and not venv.exists(), (r.stdout, r.stderr)
    msg = [l for l in r.stderr.splitlines() if l.startswith('make: ') and 'Error' not in l]
    assert len(msg) == 1 and 'need Python 99.0 or newer' in msg[0] and sys.version.split()[0] in msg[0], r.stderr


@needs_make
def test_make_test_oldest_runs_on_the_declared_floors():
    """`make test-oldest` takes its Python and torch from settings.ini (`min_python`, the `torch>=` of `requirements`), so the
    floors the package declares are the ones it tests; setup.py's python_requires is the same min_python."""
    import re
    cfg = load_script('tools/make_docs.py').settings(REPO)                 # settings.ini, read as the docs build reads it
    torch_floor = re.search(r'torch>=([\d.]+)', cfg['requirements']).group(1)
    r = _make('-n', '-B', 'test-oldest')          # -B: as on a fresh checkout, whatever venvs exist here
    assert r.returncode == 0, r.stderr
    py = cfg['min_python']
    # `make -n` runs the inner `make test` too (as `-n`): its own commands show what it would do
    for cmd in (f'python{py} -c', f'v == "{py}"',                                       # test-oldest: exactly the floor
                f'python{py} -m venv .venv-oldest', f'"{py}".split(".")',               # the venv, its MIN_PYTHON check
                f'.venv-oldest/bin/python -m pip install -q torch~={torch_floor}.0',   # the torch floor's newest patch
                ".venv-oldest/bin/python -m pip install -q -e '.[dev]'"):            # no docs tools
        assert cmd in r.stdout, (cmd, r.stdout[:3000])
    assert "python_requires  = '>=' + cfg['min_python']" in (REPO / 'setup.py').read_text()
