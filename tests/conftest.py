"Shared test set-up: pinned thread counts (parallel workers must not starve each other) and the `gpu` / `slow` markers."
import os

import pytest
import torch

torch.set_num_threads(max(1, int(os.environ.get('SFERD_TEST_THREADS', '1'))))


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU (`make test-gpu`); skipped where none is visible')
    config.addinivalue_line('markers', 'slow: longer than a minute; run with `-m slow`')


# The longest tests (`pytest --durations`, two workers beside the notebooks, 2026-12-06) start first on both workers:
# `--dist worksteal` gives the first worker the first half of the list and the second worker the rest, and a worker that
# runs out steals from the tail of the other's queue; so every other long test goes to the head of each half, and no
# long test is left for the end, when one core may be waiting on it.
LONGEST_FIRST = ('test_docs.py::test_site_in_browser', 'test_packaging.py::test_readme_python_snippet_from_the_wheel',
                 'test_packaging.py::test_readme_quick_start_from_the_wheel', 'test_tools.py::test_fullsize_smoke_script_end_to_end',
                 'test_gdd_cli.py::test_gdd_ddp_equals_single_process', 'test_semantic.py::test_ddp_equals_single_process',
                 'test_train.py::test_overfit_one_batch', 'test_trust_runs.py::test_eval_of_a_real_model_is_not_flagged',
                 'test_packaging.py::test_notebooks_run_alone_from_the_wheel', 'test_train.py::test_big_configs_one_step',
                 'test_cli.py::test_distill_then_eval', 'test_gdd_cli.py::test_gdd_cli_resume_is_exact_and_samples',
                 'test_distill.py::test_ddp_equals_single_process', 'test_semantic.py::test_cli_semantic_pd_exports_and_generates')


def _longest_first(item) -> int:
    return next((i for i, k in enumerate(LONGEST_FIRST) if k in item.nodeid), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config, items):
    ranked = sorted(items, key=_longest_first)                       # stable: the rest keep their order
    n_long = sum(_longest_first(it) < len(LONGEST_FIRST) for it in items)
    long, rest, half = ranked[:n_long], ranked[n_long:], len(items) // 2
    first = long[0::2] + rest[:max(0, half - len(long[0::2]))]
    items[:] = first + long[1::2] + rest[len(first) - len(long[0::2]):]
    if torch.cuda.is_available() or os.environ.get('SFERD_GPU_TEST_DEVICE') == 'cpu': return   # 'cpu': the suite's dry run
    skip = pytest.mark.skip(reason='no CUDA GPU visible (the gpu suite runs with `make test-gpu` on a GPU machine)')
    for item in items:
        if 'gpu' in item.keywords: item.add_marker(skip)


@pytest.fixture(autouse=True, scope='session')
def _tests_own_cache(tmp_path_factory):
    "Derived data the tests make (ImageNet 64x64 copies, FID statistics) go to a temporary folder, not the user's ~/.cache."
    if os.environ.get('SFERD_CACHE'):
        yield; return
    os.environ['SFERD_CACHE'] = str(tmp_path_factory.mktemp('sferd_cache'))
    yield
    os.environ.pop('SFERD_CACHE', None)


# --- helpers the test modules share (import them: `from conftest import export_tiny_teacher, ...`) ---------------------

def export_tiny_teacher(path, *, cond: bool = False, model_channels: int = 16, num_blocks: int = 1, attn_resolutions=(8,),
                        img_resolution: int = 32, perturb: float = 0., zero: bool = False, param: str = 'edm', seed: int = 0):
    """A small untrained `tiny` UNet teacher exported to `path` (data 'cifar10-subset'), the same for every test that asks
    for the same arguments. `perturb`: add that much Gaussian noise to every weight (no zero-initialised layer: every
    tensor gets gradients); `zero`: every weight 0 (the network outputs 0)."""
    from sferd_nb.diffusion import Denoiser, get_schedule
    from sferd_nb.io import export_denoiser
    from sferd_nb.unet import build_unet
    torch.manual_seed(seed)
    kw = dict(attn_resolutions=attn_resolutions) if attn_resolutions is not None else {}
    net = build_unet('tiny', num_classes=10 if cond else 0, model_channels=model_channels, num_blocks=num_blocks,
                     img_resolution=img_resolution, **kw)
    with torch.no_grad():
        for p in net.parameters():
            if zero: p.zero_()
            if perturb: p.add_(perturb * torch.randn_like(p))
    return export_denoiser(Denoiser(net, get_schedule('edm'), parameterization=param), path, config=dict(data='cifar10-subset'))


@pytest.fixture(scope='session')
def teacher(tmp_path_factory):
    "The default `export_tiny_teacher` export, made once per test session (worker): the commands only read it."
    return export_tiny_teacher(tmp_path_factory.mktemp('t') / 'teacher')


def write_nb(path, cells: list):
    "A notebook at `path` from `cells`: a string is a code cell, ('md', text) a markdown cell; returns the path."
    import json
    from pathlib import Path
    def cell(c):
        if isinstance(c, tuple): return dict(cell_type='markdown', source=c[1], metadata={})
        return dict(cell_type='code', source=c, metadata={}, outputs=[], execution_count=None)
    Path(path).write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[cell(c) for c in cells])))
    return Path(path)


def small_dataset(n: int = 64):
    "The first `n` training images of the embedded CIFAR-10 subset, as an ImageDataset."
    from sferd_nb.data import ImageDataset, load_cifar10_subset
    d = load_cifar10_subset()
    return ImageDataset(d['x_train'][:n], labels=d['y_train'][:n], num_classes=10)


def free_port() -> int:
    """A MASTER_PORT for a gloo launch. Two launches on one port at once make one rank 0 fail to bind, its rank 1 join the
    other launch's store and both launches hang until their timeouts (seen with `pytest -n 2`: two DDP tests at once,
    after the kernel gave the port that one test had just checked to another's socket). So each pytest-xdist worker
    draws from a range of its own, below the kernel's ephemeral ports (Linux: 32768 and up) that gloo's connections and
    a bind to port 0 take: another worker's launch, or any socket it opens, cannot be given the same port."""
    import random, socket
    worker = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0)
    lo = 20000 + 250 * (worker % 48)                             # 20000-31999: 48 workers, 250 ports each
    for port in random.sample(range(lo, lo + 250), 250):
        with socket.socket() as s:
            try: s.bind(('127.0.0.1', port)); return port
            except OSError: continue
    raise RuntimeError(f'no free port in {lo}-{lo + 249}')


def launch_gloo(script, *argv, timeout: int = 300) -> list:
    "Run `script` with `argv` as a 2-rank gloo job on a port of this worker's (`free_port`); asserts both ranks exit 0, returns their stdouts."
    import subprocess, sys
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), WORLD_SIZE='2')
    ps = [subprocess.Popen([sys.executable, str(script), *map(str, argv)], env=dict(env, RANK=str(k), LOCAL_RANK=str(k)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    try: outs = [p.communicate(timeout=timeout) for p in ps]
    finally:                                                      # a hung launch leaves no processes behind
        for p in ps: p.kill() if p.poll() is None else None
    assert all(p.returncode == 0 for p in ps), [o[1][-2000:] for o in outs]
    return [o[0] for o in outs]


def one_and_two_processes(worker: str, tmp_path, *args) -> tuple:
    "Run the script `worker` with argv (*args[:1], out dir, *args[1:]) in 1 process (out 'one') and in 2 gloo processes (out 'two'); return both dirs."
    import subprocess, sys
    script = tmp_path / 'w.py'; script.write_text(worker)
    head, tail = [str(a) for a in args[:1]], [str(a) for a in args[1:]]
    r = subprocess.run([sys.executable, str(script), *head, str(tmp_path / 'one'), *tail], env=dict(os.environ, OMP_NUM_THREADS='1'),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    launch_gloo(script, *head, tmp_path / 'two', *tail)
    return tmp_path / 'one', tmp_path / 'two'


# One distillation worker for the DDP equality tests (PD / CD, PD + SGP / SFERD-PD, GDD): argv = teacher, out folder, and a
# JSON {run name: distill() keywords}; each run goes to out/<name>, on the first `n_images` training images (default 64),
# in fp32 (bf16 sums depend on how the batch is split). `sgp_wrapper`: keywords of `semantic.sgp_student_wrapper`.
DISTILL_WORKER = r'''
import json, sys, torch.distributed as dist
from sferd_nb import distill as D
from sferd_nb.data import ImageDataset, load_cifar10_subset
from sferd_nb.io import load_denoiser
from sferd_nb.train import distributed
with distributed("cpu"):                      # gloo on the CPU, also where a GPU is visible
    D.load_method_modules()                       # sferd-pd, sferd-cd, gdd
    d = load_cifar10_subset()
    for name, kw in json.loads(sys.argv[3]).items():     # one launch for every run (each run seeds itself)
        n = kw.pop('n_images', 64)
        if 'sgp_wrapper' in kw:
            from sferd_nb import semantic as S
            kw['student_wrapper'] = S.sgp_student_wrapper(**kw.pop('sgp_wrapper'))
        kw = dict(dict(progress=False, ckpt_every=-1, sample_every=-1, train_kw=dict(amp='none')), **kw)
        D.distill(load_denoiser(sys.argv[1]), ImageDataset(d['x_train'][:n], labels=d['y_train'][:n], num_classes=10),
                  f'{sys.argv[2]}/{name}', **kw)
'''


def distill_in_one_and_two_processes(tmp_path, teacher, runs: dict) -> tuple:
    "`DISTILL_WORKER` with `runs` ({name: distill() keywords}) in 1 process and in 2 gloo processes; returns the two out folders."
    import json
    return one_and_two_processes(DISTILL_WORKER, tmp_path, teacher, json.dumps(runs))


def max_weight_diff(a: dict, b: dict) -> float:
    "The largest absolute difference between two state dicts with the same keys."
    assert sorted(a) == sorted(b)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


# the installed console scripts, run as a user runs them (tests/test_trust.py, tests/test_trust_runs.py)
BIN = __import__('pathlib').Path(__import__('sys').executable).parent
SCRIPT_ENV = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg')


def run_script(*args, cwd=None):
    """Run console script args[0] (`sferd-distill`, ...) with the other args (as strings) like a user, stdout and stderr
    captured; returns a `subprocess.CompletedProcess`. In this process, to save a fresh interpreter and `import torch`
    (~2 s) per call: the command's `cli.COMMANDS` entry with the arguments as argv, in `cwd`, its `SystemExit` turned into
    an exit status as Python's interpreter does (a message goes to stderr with status 1) and any other exception into a
    traceback on stderr with status 1. tests/test_cli.py runs the installed console scripts in their own processes."""
    import contextlib, io, subprocess, sys, traceback
    from pathlib import Path
    argv = [str(a) for a in args[1:]]
    from sferd_nb import cli, runs, train
    main = cli.COMMANDS[args[0].removeprefix('sferd-')]
    out, err, here, code = io.StringIO(), io.StringIO(), os.getcwd(), 0
    # what a fresh process would not inherit: held folder locks, the once-per-process settings line, threads, the RNG
    held, announced = set(runs._HELD), set(train._ANNOUNCED)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    env = {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MPLBACKEND')}
    train._ANNOUNCED.clear(); os.environ.update(OMP_NUM_THREADS='1', MPLBACKEND='Agg')
    try:
        if cwd is not None: os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: main(argv)
            except SystemExit as e:
                if isinstance(e.code, str): print(e.code, file=sys.stderr); code = 1
                else: code = e.code or 0
            except Exception:
                traceback.print_exc(); code = 1
    finally:
        os.chdir(here)
        for key in runs._HELD - held:                                  # the locks a process releases when it exits
            runs._release(Path(key) / runs.LOCK_NAME, os.getpid()); runs._HELD.discard(key)
        train._ANNOUNCED.clear(); train._ANNOUNCED.update(announced)
        torch.set_num_threads(threads); torch.set_rng_state(rng)
        for k, v in env.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return subprocess.CompletedProcess([args[0], *argv], code, out.getvalue(), err.getvalue())


def one_line_error(r, cmd, contains=''):
    "Check that the run `r` of `cmd` failed with one line `cmd: error: ...` containing `contains`, no traceback; returns the line."
    assert r.returncode != 0, r.stdout[-800:]
    err = r.stderr.strip().splitlines()
    assert err and err[-1].startswith(f'{cmd}: error:'), r.stderr[-1500:]
    assert 'Traceback' not in r.stderr, r.stderr[-1500:]
    assert contains in err[-1], err[-1]
    return err[-1]


def load_script(rel: str):
    "A repository script (`tools/...py`, `benchmarks/...py`; not a package) imported from its path, as a module."
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / rel
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod
