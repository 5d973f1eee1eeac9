"The installed console scripts, run as a user runs them: exit status 0 on success, a one-line error on bad input."
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser
from sferd_nb.unet import build_unet

BIN = Path(sys.executable).parent
COMMANDS = ['sferd-data', 'sferd-train-teacher', 'sferd-distill', 'sferd-analyze', 'sferd-eval', 'sferd-demo']
ENV = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg')


def _run(*args, cwd=None):
    exe = BIN / args[0]
    if not exe.exists(): pytest.fail(f"{exe} is not installed: run `make install` (pip install -e .)")
    return subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


@pytest.mark.parametrize('cmd', COMMANDS)
def test_help_exits_zero(cmd):
    r = _run(cmd, '--help')
    assert r.returncode == 0, r.stderr
    assert 'usage:' in r.stdout


def test_distill_then_eval_exit_zero_and_print_no_python_objects(tmp_path):
    torch.manual_seed(0)
    net = build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,))
    teacher = export_denoiser(Denoiser(net, get_schedule('edm'), 'edm'), tmp_path / 'teacher', dict(data='cifar10-subset'))
    r = _run('sferd-distill', '--method', 'pd', '--teacher', str(teacher), '--out', str(tmp_path / 'pd'),
             '--teacher-steps', '2', '--max-steps', '1', '--batch-size', '4', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'PosixPath' not in r.stdout + r.stderr                  # a returned value must not be printed as an error
    student = tmp_path / 'pd' / 'stage0_1steps'
    assert (student / 'model.safetensors').exists()
    r = _run('sferd-eval', '--checkpoint', str(student), '--steps', '1', '--num-samples', '8', '--seeds', '0',
             '--extractor', 'standin', '--denoise-images', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'standin' in r.stdout and "{'" not in r.stdout + r.stderr


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    r = _run('sferd-distill', '--method', 'pd', '--teacher', str(tmp_path / 'missing'), '--out', str(tmp_path / 'o'))
    assert r.returncode != 0
    msg = r.stderr.strip().splitlines()
    assert len(msg) == 1 and msg[0].startswith('sferd-distill: error:'), r.stderr
