"The installed console scripts, run as a user runs them: exit status 0 on success, a one-line error on bad input."
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser
from sferd_nb.unet import build_unet

from conftest import run_script

BIN = Path(sys.executable).parent
COMMANDS = ['sferd-data', 'sferd-train-teacher', 'sferd-distill', 'sferd-analyze', 'sferd-eval', 'sferd-demo']
ENV = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg')


def _run(*args, cwd=None):
    exe = BIN / args[0]
    if not exe.exists(): pytest.fail(f"{exe} is not installed: run `make install` (pip install -e .)")
    return subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


@pytest.mark.parametrize('cmd', COMMANDS)
def test_help_exits_zero(cmd, monkeypatch, capsys):
    "Each console script is installed, its entry point is the `cli` function of that name, and `--help` exits 0 (in this process: the commands' own processes are run below)."
    import importlib.metadata
    assert (BIN / cmd).exists(), f"{BIN / cmd} is not installed: run `make install` (pip install -e .)"
    ep = next(e for e in importlib.metadata.entry_points(group='console_scripts') if e.name == cmd)
    assert ep.value == f"sferd_nb.cli:{cmd.replace('-', '_')}", ep.value
    monkeypatch.setattr(sys, 'argv', [cmd, '--help'])
    with pytest.raises(SystemExit) as e: ep.load()()                       # what the installed script calls
    assert e.value.code == 0 and 'usage:' in capsys.readouterr().out


@pytest.mark.parametrize('method', ['pd', 'sferd-pd', 'gdd'])
def test_distill_then_eval_exit_zero_and_print_no_python_objects(tmp_path, method):
    "Each export type through the console scripts, each in a fresh process (no module imported beforehand registers it)."
    torch.manual_seed(0)
    net = build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,))
    teacher = export_denoiser(Denoiser(net, get_schedule('edm'), parameterization='edm'), tmp_path / 'teacher', config=dict(data='cifar10-subset'))
    steps = ['--teacher-steps', '2'] if method != 'gdd' else []
    extra = ['--latent-dim', '8', '--latent-steps', '2'] if method == 'sferd-pd' else []
    r = _run('sferd-distill', '--method', method, '--teacher', str(teacher), '--out', str(tmp_path / 'run'), *steps, *extra,
             '--max-steps', '1', '--batch-size', '4', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'PosixPath' not in r.stdout + r.stderr                  # a returned value must not be printed as an error
    student = Path(r.stdout.strip().splitlines()[-1].removeprefix('students: ').split(', ')[-1])
    assert student.name == {'pd': 'stage0_1steps', 'sferd-pd': 'sgp', 'gdd': 'gdd'}[method]
    assert (student / 'model.safetensors').exists()
    r = _run('sferd-eval', '--checkpoint', str(student), '--steps', '1', '--num-samples', '8', '--seeds', '0', '--score-degenerate',
             '--out', str(tmp_path / 'ev'),
             '--extractor', 'standin', '--denoise-images', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'standin' in r.stdout and "{'" not in r.stdout + r.stderr
    if method == 'sferd-pd':                  # an SGP student needs its own z_sem: not a teacher, not for Eq. 8's analysis
        for cmd, args in (('sferd-analyze', ['--checkpoint', str(student), '--out', str(tmp_path / 'an')]),
                          ('sferd-distill', ['--teacher', str(student), '--out', str(tmp_path / 'd2'), '--no-progress'])):
            r = run_script(cmd, *args)                                 # in this process: the error path only
            assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr[-2000:]
            assert r.stderr.strip().splitlines()[-1].startswith(f'{cmd}: error:') and 'SGP student' in r.stderr, r.stderr


def test_every_export_type_is_known_to_a_fresh_process():
    "A type registered by a later notebook's module (register_export_type) is also in io.EXPORT_TYPES, so loading needs no import."
    import re
    pkg = Path(__file__).resolve().parents[1] / 'sferd_nb'
    registered = {m for f in pkg.glob('*.py') for m in re.findall(r"^register_export_type\('([^']+)'", f.read_text(), re.M)}
    assert {'sgp-student', 'gdd-generator'} <= registered
    r = subprocess.run([sys.executable, '-c', 'import sferd_nb.io as io; print(" ".join(io.EXPORT_TYPES))'],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert registered <= set(r.stdout.split()), registered - set(r.stdout.split())


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    r = _run('sferd-distill', '--method', 'pd', '--teacher', str(tmp_path / 'missing'), '--out', str(tmp_path / 'o'))
    assert r.returncode != 0
    msg = r.stderr.strip().splitlines()
    assert len(msg) == 1 and msg[0].startswith('sferd-distill: error:'), r.stderr
