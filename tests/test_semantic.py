"Integration tests for the semantic gradient predictor (issue 15): CLI, export/load, generation, resume across the phase boundary, DDP."
import json, os
from pathlib import Path

import pytest
import torch

from sferd_nb.cli import main_distill
from sferd_nb.io import load_denoiser
from sferd_nb import distill as D
from sferd_nb import semantic as S
from sferd_nb.metrics import generate
from conftest import distill_in_one_and_two_processes, max_weight_diff, small_dataset as _small_ds   # shared with the PD/CD tests
from test_distill import _teacher                                  # the same tiny teacher as the PD/CD tests

def _ds(n=32): return _small_ds(n)

SGP_KW = dict(latent_dim=16, encoder_channels=(16, 32, 32), latent=dict(width=32, depth=2, max_steps=6, batch_size=16,
                                                                       sample_steps=7, sampler='ddim'))

def test_cli_semantic_pd_exports_and_generates(tmp_path):
    t = _teacher(tmp_path)
    dirs = main_distill(['--method', 'pd', '--semantic', '--latent-dim', '16', '--latent-steps', '5', '--teacher', str(t),
                         '--out', str(tmp_path / 'run'), '--teacher-steps', '2', '--max-steps', '2', '--batch-size', '4',
                         '--no-progress'])
    assert [Path(d).name for d in dirs] == ['stage0_1steps', 'sgp']
    cfg = json.loads((Path(dirs[-1]) / 'config.json').read_text())
    assert cfg['type'] == 'sgp-student' and cfg['distill']['method'] == 'pd' and cfg['semantic']['latent_dim'] == 16
    assert (Path(dirs[-1]) / 'latent' / 'ckpt.pt').exists() and list((Path(dirs[-1]) / 'samples').glob('*.png'))
    den, rec = D.load_student(dirs[-1])
    assert isinstance(den, S.SGPStudent) and den.latent is not None
    x = generate(den, 3, rec['steps'], recipe=rec, seed=0)                  # z_sem from the latent DDIM: no real image
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x, generate(den, 3, rec['steps'], recipe=rec, seed=0))
    m = D.load(dirs[-1], 'cpu')                                       # the front door: an SGP student is a Model too
    xs = m.sample(3, seed=0)
    assert (m.method, m.nfe) == ('pd', 1) and xs.shape == (3, 3, 32, 32) and torch.isfinite(xs).all()
    assert torch.equal(xs, m.sample(3, seed=0))
    from sferd_nb.cli import main_eval                                # sferd-eval: FID and denoising l2 of an SGP student
    r = main_eval(['--checkpoint', str(dirs[-1]), '--num-samples', '8', '--seeds', '0', '--extractor', 'standin', '--score-degenerate',
                   '--denoise-images', '4', '--out', str(tmp_path / 'eval')])[0]
    assert r['denoising_l2_mean'] > 0 and r['fid'][0] > 0
    with pytest.raises(SystemExit, match='sferd-distill: error: --latent-dim must be >= 1'):
        main_distill(['--semantic', '--latent-dim', '0', '--teacher', str(t), '--out', str(tmp_path / 'bad'), '--no-progress'])

def test_cd_semantic_conditional(tmp_path):
    t = _teacher(tmp_path, cond=True)
    dirs = D.distill(load_denoiser(t), _ds(), tmp_path / 'cd', method='cd', max_steps=2, batch_size=4, N=4, progress=False,
                     sample_every=-1, student_wrapper=S.sgp_student_wrapper(**SGP_KW))
    den, rec = D.load_student(dirs[-1])
    assert isinstance(den, S.SGPStudent) and den.student.parameterization == 'cm' and rec['method'] == 'cd'
    assert (den.latent.sample_steps, den.latent.sampler) == (7, 'ddim')          # the latent settings reach the sampler
    cond = D.sampling_condition(den, 2, labels=torch.tensor([3, 4]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(cond.teacher_cond, torch.tensor([3, 4]))
    x = D.student_sample(den, torch.randn(2, 3, 32, 32) * 80, 1, rec, cond=cond)
    assert torch.isfinite(x).all()

@pytest.mark.parametrize('method', ['pd', 'cd'])
def test_sgp_real_target_reading_regresses_phase1_onto_the_real_images(tmp_path, monkeypatch, method):
    "sgp_target='real' (PDAE's Eq. 13): phase 1 of the SGP stage regresses onto the real x0, with no teacher solve; recorded and reloaded."
    t, calls = _teacher(tmp_path), []
    solve = D.teacher_solve
    monkeypatch.setattr(D, 'teacher_solve', lambda *a, **k: calls.append(1) or solve(*a, **k))
    kw = dict(max_steps=4, batch_size=4, progress=False, sample_every=-1, **(dict(N=4) if method == 'cd' else dict(teacher_steps=2)))
    n = {}
    for target in ('teacher', 'real'):
        calls.clear()
        dirs = D.distill(load_denoiser(t), _ds(), tmp_path / target, method=method, **kw,
                         student_wrapper=S.sgp_student_wrapper(split=0.5, target=target, **SGP_KW))
        n[target] = len(calls)
        den, rec = D.load_student(dirs[-1])
        assert den.target == target
        assert json.loads((Path(dirs[-1]) / 'config.json').read_text())['sgp']['target'] == target
    assert n['teacher'] - n['real'] == 2                     # split 0.5 of 4 steps: 2 steps on the real images
    with pytest.raises(ValueError, match=r'target \(--sgp-target\) must be one of'): S.sgp_student_wrapper(target='x0')

class _Crash(Exception): pass

def _run(tmp, t, resume=False):
    return D.distill(load_denoiser(t), _ds(), tmp, method='pd', teacher_steps=2, max_steps=4, batch_size=4, progress=False,
                     ckpt_every=1, sample_every=-1, resume=resume, student_wrapper=S.sgp_student_wrapper(split=0.5, **SGP_KW))

def test_resume_across_the_phase_boundary_is_exact(tmp_path, monkeypatch):
    t = _teacher(tmp_path)
    straight = _run(tmp_path / 'a', t)[-1]
    orig = D.ProgressiveDistillation.__call__
    def crashing(self, model, batch, step):                          # dies in phase 2 of the SGP stage (split after step 2)
        if step == 3 and isinstance(D.unwrap(model), S.SGPStudent): raise _Crash()
        return orig(self, model, batch, step)
    monkeypatch.setattr(D.ProgressiveDistillation, '__call__', crashing)
    with pytest.raises(_Crash): _run(tmp_path / 'b', t)
    monkeypatch.setattr(D.ProgressiveDistillation, '__call__', orig)
    assert (tmp_path / 'b' / 'sgp' / 'ckpt.pt').exists() and not (tmp_path / 'b' / 'sgp' / 'model.safetensors').exists()
    resumed = _run(tmp_path / 'b', t, resume=True)[-1]
    a, b = load_denoiser(straight).state_dict(), load_denoiser(resumed).state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), 'resumed SGP student differs'

def test_ddp_equals_single_process(tmp_path):
    "PD + SGP and SFERD-PD: 2 gloo processes give the 1-process weights (one launch of each kind runs both methods)."
    kw = dict(n_images=32, teacher_steps=2, max_steps=2, batch_size=8)
    runs = {'pd+sgp': dict(kw, method='pd', sgp_wrapper=dict(latent_dim=16, encoder_channels=(16, 32, 32), split=0.5,
                                                             latent=dict(width=32, depth=2, max_steps=2, batch_size=16))),
            'sferd-pd': dict(kw, method='sferd-pd', latent_dim=16, latent_steps=2)}   # the registered SFERD method: guided teacher + SGP student
    one, two = distill_in_one_and_two_processes(tmp_path, _teacher(tmp_path), runs)
    for method in runs:
        diff = max_weight_diff(load_denoiser(one / method / 'sgp').state_dict(), load_denoiser(two / method / 'sgp').state_dict())
        assert diff <= 1e-5, (method, diff)

def test_demo_ablation_flags(tmp_path):
    from sferd_nb.cli import main_demo
    from sferd_nb.demo import ABLATION, METHOD_NAMES
    assert set(ABLATION) <= set(METHOD_NAMES) and len(ABLATION) == 8
    with pytest.raises(SystemExit, match='--ablation or --methods'):
        main_demo(['--quick', '--ablation', '--methods', 'pd', '--out', str(tmp_path / 'd'), '--no-progress'])
    with pytest.raises(SystemExit, match='unknown demo method'):
        main_demo(['--quick', '--methods', 'pd+xyz', '--out', str(tmp_path / 'd2'), '--no-progress'])

_CL_WORKER = r'''
import sys, torch
sys.path.insert(0, sys.argv[3])
from sferd_nb import distill as D, semantic as S
from sferd_nb.io import load_denoiser
from test_distill import _small_ds
D.distill(load_denoiser(sys.argv[1]), _small_ds(16), sys.argv[2], method='pd', teacher_steps=2, max_steps=2, batch_size=4,
          progress=False, ckpt_every=-1, sample_every=-1, train_kw=dict(channels_last=True, amp=sys.argv[4]),
          student_wrapper=S.sgp_student_wrapper(latent_dim=16, encoder_channels=(16, 32, 32), split=0.5,
                                                latent=dict(width=32, depth=2, max_steps=2, batch_size=16)))
print('trained')
'''

@pytest.mark.parametrize('amp', ['none', 'bf16'])
def test_sgp_trains_channels_last_on_the_cpu(tmp_path, amp):
    "G reads the frozen trunk in channels_last on the CPU (torch's CPU GroupNorm backward segfaults on a channels_last input that needs no grad: semantic._frozen works around it); in a child process, so a crash fails this test only."
    import subprocess, sys
    r = subprocess.run([sys.executable, '-c', _CL_WORKER, str(_teacher(tmp_path)), str(tmp_path / 'run'),
                        str(Path(__file__).parent), amp], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0 and 'trained' in r.stdout, (r.returncode, r.stderr[-2000:])
    assert load_denoiser(tmp_path / 'run' / 'sgp') is not None


def test_the_latent_sampler_refuses_a_sampler_it_does_not_have_at_sample_time_too():
    "`LatentSampler.sample(sampler=...)` checks its override as the constructor checks the default ('euler' used to run)."
    from sferd_nb.semantic import LatentSampler
    ls = LatentSampler(4, width=8, depth=1, sample_steps=2)
    assert ls.sample(3, sampler='ddim').shape == (3, 4)
    with pytest.raises(ValueError, match="sampler must be 'heun' .* or 'ddim'"): ls.sample(3, sampler='euler')
