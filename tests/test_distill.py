"Integration tests for sferd_nb.distill (issue 5): CLI, resume, DDP equivalence, bad input."
import json
from pathlib import Path

import pytest
import torch

from sferd_nb.cli import main_distill
from sferd_nb.io import load_denoiser
from sferd_nb import distill as D

from conftest import distill_in_one_and_two_processes, export_tiny_teacher, max_weight_diff, small_dataset as _small_ds

def _teacher(tmp_path, cond=False):
    return export_tiny_teacher(tmp_path / ('teacher_c' if cond else 'teacher'), cond=cond)

def _weights(d):
    return load_denoiser(d).net.state_dict()

def test_cli_pd_runs_resumes_and_samples(tmp_path):
    t = _teacher(tmp_path)
    out = tmp_path / 'pd'
    args = ['--method', 'pd', '--teacher', str(t), '--out', str(out), '--teacher-steps', '4', '--max-steps', '2',
            '--batch-size', '4', '--no-progress', '--ckpt-every', '1']
    dirs = main_distill(args)
    assert [Path(d).name for d in dirs] == ['stage0_2steps', 'stage1_1steps']
    for d in dirs:
        assert (Path(d) / 'model.safetensors').exists() and list((Path(d) / 'samples').glob('*.png'))
        rec = json.loads((Path(d) / 'config.json').read_text())['distill']
        assert rec['method'] == 'pd' and rec['steps'] in (2, 1)
    # the same command again refuses to overwrite what is there ...
    again = ['--method', 'pd', '--teacher', str(t), '--out', str(tmp_path / 'pd2'), '--teacher-steps', '2',
             '--max-steps', '1', '--batch-size', '4', '--no-progress']
    main_distill(again)
    with pytest.raises(SystemExit, match='--resume'):
        main_distill(again)
    # ... and a 1-step student samples images with the sampling API
    den, rec = D.load_student(dirs[-1])
    x = D.student_sample(den, torch.randn(2, 3, 32, 32) * 80, rec['steps'], rec['method'])
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
    # a stage still training (its checkpoint, no export yet) loads with its method's recipe, not as a teacher
    live = tmp_path / 'in_training'; live.mkdir()
    (live / 'ckpt.pt').write_bytes((Path(dirs[-1]) / 'ckpt.pt').read_bytes())
    assert D.load(live, 'cpu').recipe == D.load(dirs[-1], 'cpu').recipe == rec and rec['method'] == 'pd'
    assert D.load_student(live / 'ckpt.pt')[1] == rec

def _run_pd(tmp, t, steps, resume=False, method='pd'):
    return D.distill(load_denoiser(t), _small_ds(), tmp, method=method, teacher_steps=2, student_steps=1, max_steps=steps,
                     batch_size=4, progress=False, ckpt_every=1, sample_every=-1, resume=resume)

class _Crash(Exception): pass

@pytest.mark.parametrize('method', ['pd', 'cd'])
def test_resume_is_exact(tmp_path, method, monkeypatch):
    t = _teacher(tmp_path)
    straight = _run_pd(tmp_path / 'a', t, 4, method=method)[0]
    # the same run killed during step 2 (checkpoints after every step), then resumed to the end
    cls = D.ProgressiveDistillation if method == 'pd' else D.ConsistencyDistillation
    name = '__call__' if method == 'pd' else 'forward'
    orig = getattr(cls, name)
    def crashing(self, model, batch, step):
        if step == 2: raise _Crash()
        return orig(self, model, batch, step)
    monkeypatch.setattr(cls, name, crashing)
    with pytest.raises(_Crash):
        _run_pd(tmp_path / 'b', t, 4, method=method)
    monkeypatch.setattr(cls, name, orig)
    sub = tmp_path / 'b' / ('stage0_1steps' if method == 'pd' else 'cd')
    assert (sub / 'ckpt.pt').exists() and not (sub / 'model.safetensors').exists()
    with pytest.raises(FileExistsError):
        _run_pd(tmp_path / 'b', t, 4, method=method)
    resumed = _run_pd(tmp_path / 'b', t, 4, resume=True, method=method)[0]
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), 'resumed weights differ from the uninterrupted run'

def test_cd_cli_conditional(tmp_path):
    t = _teacher(tmp_path, cond=True)
    dirs = main_distill(['--method', 'cd', '--teacher', str(t), '--out', str(tmp_path / 'cd'), '--max-steps', '2',
                           '--batch-size', '4', '--N', '6', '--no-progress'])
    den, rec = D.load_student(dirs[0])
    assert den.parameterization == 'cm' and rec['method'] == 'cd'
    x = D.student_sample(den, torch.randn(3, 3, 32, 32) * 80, 2, 'cd', cond=torch.tensor([0, 1, 2]))
    assert torch.isfinite(x).all()

def test_bad_input(tmp_path):
    with pytest.raises(SystemExit, match='sferd-distill: error:'):
        main_distill(['--teacher', str(tmp_path / 'missing'), '--out', str(tmp_path / 'o')])
    t = _teacher(tmp_path)
    with pytest.raises(SystemExit, match='power of two'):
        main_distill(['--teacher', str(t), '--out', str(tmp_path / 'o'), '--teacher-steps', '6', '--no-progress'])
    with pytest.raises(ValueError, match="unknown distillation method 'gd'; choose one of pd, cd"):
        D.distill(load_denoiser(t), _small_ds(), tmp_path / 'x', method='gd')

def test_ddp_equals_single_process(tmp_path):
    "PD and CD: 2 gloo processes give the 1-process weights (one launch of each kind runs both methods)."
    kw = dict(teacher_steps=2, student_steps=1, max_steps=3, batch_size=8)
    one, two = distill_in_one_and_two_processes(tmp_path, _teacher(tmp_path), {m: dict(kw, method=m) for m in ('pd', 'cd')})
    for method, sub in (('pd', 'stage0_1steps'), ('cd', 'cd')):
        diff = max_weight_diff(_weights(one / method / sub), _weights(two / method / sub))
        assert diff <= 1e-5, (method, diff)

def test_cli_attention_guidance_pd(tmp_path):
    t = _teacher(tmp_path)
    dirs = main_distill(['--method', 'pd', '--attention-guidance', '--w', '0.3', '--psi', '1.0', '--teacher', str(t),
                           '--out', str(tmp_path / 'ag'), '--teacher-steps', '2', '--max-steps', '1', '--batch-size', '4',
                           '--no-progress'])
    cfg = json.loads((Path(dirs[0]) / 'config.json').read_text())
    assert cfg['attention_guidance'] == dict(psi=1.0, w=0.3, blur_sigma=3.0, resolution=None)
    with pytest.raises(SystemExit, match='attention'):
        main_distill(['--attention-guidance', '--attn-resolution', '32', '--teacher', str(t), '--out',
                        str(tmp_path / 'ag2'), '--teacher-steps', '2', '--max-steps', '1', '--batch-size', '4', '--no-progress'])


def test_resume_of_a_finished_run_says_it_is_not_extended(tmp_path, capsys):
    t = _teacher(tmp_path)
    args = ['--method', 'cd', '--teacher', str(t), '--out', str(tmp_path / 'cd'), '--batch-size', '4', '--no-progress',
            '--sample-every', '-1', '--ckpt-every', '-1', '--N', '4']
    main_distill(args + ['--max-steps', '1'])
    capsys.readouterr()
    dirs = main_distill(args + ['--max-steps', '3', '--resume'])
    assert json.loads((Path(dirs[0]) / 'DONE').read_text())['step'] == 1
    assert 'finished at step 1' in capsys.readouterr().err
