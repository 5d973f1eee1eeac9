"Integration tests for sferd_nb.guidance (issue 7): limiting cases, no autograd, parameterisations, distill wrapper."
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sferd_nb.cli import main_distill
from sferd_nb.diffusion import Denoiser, Prediction, get_schedule
from sferd_nb.unet import build_unet
from sferd_nb.samplers import sample, time_grid, prior_sample
from sferd_nb.io import export_denoiser, load_denoiser
from sferd_nb import distill as D
from sferd_nb.metrics import denoising_l2
from sferd_nb.guidance import (AttentionGuidedTeacher, attention_guidance, gaussian_blur,
                               guided_teacher_wrapper, risky_mask)


def _teacher(schedule='edm', par='edm', num_classes=0, seed=0, nonzero=True):
    "A tiny random-init teacher; `nonzero` re-initialises the zero-initialised layers so that the output depends on x."
    torch.manual_seed(seed)
    net = build_unet('tiny', num_classes=num_classes, model_channels=16)
    if nonzero:
        for m in net.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.any(): nn.init.normal_(m.weight, std=0.02)
    return Denoiser(net, get_schedule(schedule), parameterization=par).eval().requires_grad_(False)


def _x(n=3, scale=1.5, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * scale


def test_limits_give_the_unguided_prediction():
    T, x = _teacher(), _x()
    plain = T(x, 1.5)
    with_attn = T(x, 1.5, return_attn=True)
    # w = 0: exactly the teacher (one forward, no attention)
    p0 = AttentionGuidedTeacher(T, w=0.)(x, 1.5)
    assert torch.equal(p0.x0, plain.x0) and torch.equal(p0.eps, plain.eps)
    # an empty mask: exactly the teacher's first-pass prediction, and no second forward is run
    G = AttentionGuidedTeacher(T, psi=1e9)
    calls = []
    h = T.net.register_forward_hook(lambda *a: calls.append(1))
    pe = G(x, 1.5)
    h.remove()
    assert len(calls) == 1 and torch.equal(pe.x0, with_attn.x0)
    torch.testing.assert_close(pe.x0, plain.x0, atol=1e-5, rtol=0)
    # a full mask and no blur: x~_t re-noises x0_hat into x_t itself -> the teacher's prediction up to rounding
    full = AttentionGuidedTeacher(T, psi=0., blur_sigma=0.)
    st = full.steps(x, 1.5)
    assert st['mask'].min() == 1
    torch.testing.assert_close(st['x_t_attn'], x, atol=1e-5, rtol=0)
    torch.testing.assert_close(full(x, 1.5).x0, plain.x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(AttentionGuidedTeacher(T, psi=0., blur_sigma=1e-4)(x, 1.5).x0, plain.x0, atol=1e-4, rtol=0)
    # ... and the default guidance does change it, by exactly Eq. 11
    G = AttentionGuidedTeacher(T)
    st = G.steps(x, 1.5)
    assert (st['x0_guided'] - st['x0_hat']).abs().max() > 1e-4
    torch.testing.assert_close(st['x0_guided'], attention_guidance(st['x0_hat'], st['x0_attn'], 0.3))
    torch.testing.assert_close(G(x, 1.5).x0, st['x0_guided'])


def test_blur_keeps_constants_and_sigma_zero_is_identity():
    c = torch.full((2, 3, 32, 32), -0.3)
    torch.testing.assert_close(gaussian_blur(c, 3., 15), c, atol=1e-6, rtol=0)
    torch.testing.assert_close(gaussian_blur(c, 5., 31), c, atol=1e-6, rtol=0)
    x = _x()
    assert gaussian_blur(x, 0.) is x
    torch.testing.assert_close(gaussian_blur(x, 1e-3), x)
    assert gaussian_blur(x, 3.).std() < 0.5 * x.std()


def test_no_autograd_graph_through_the_teacher():
    T = _teacher()
    T.requires_grad_(True)                                     # even a teacher with trainable parameters
    x = _x().requires_grad_(True)
    out = AttentionGuidedTeacher(T)(x, torch.tensor([0.3, 1., 5.]))
    assert out.x0.grad_fn is None and out.eps.grad_fn is None
    assert not out.x0.requires_grad and not out.eps.requires_grad


@pytest.mark.parametrize('schedule,par', [('edm', 'edm'), ('cosine-logsnr', 'v'), ('cosine-logsnr', 'eps'),
                                          ('linear', 'x0')])
def test_parameterisations_batched_finite_and_consistent(schedule, par):
    T = _teacher(schedule, par)
    sch = T.schedule
    t = sch.sample_t(3, generator=torch.Generator().manual_seed(0))
    x = prior_sample(sch, (3, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    G = AttentionGuidedTeacher(T)
    p = G(x, t)
    assert p.x0.shape == x.shape and p.eps.shape == x.shape
    assert torch.isfinite(p.x0).all() and torch.isfinite(p.eps).all()
    a, s = sch.alpha_sigma(t if sch.discrete else t.float())
    torch.testing.assert_close(a.view(-1, 1, 1, 1) * p.x0 + s.view(-1, 1, 1, 1) * p.eps, x.float(), atol=1e-4, rtol=1e-4)
    # per-sample times give the same result as one sample at a time
    for k in range(3):
        torch.testing.assert_close(G(x[k:k + 1], t[k:k + 1]).x0, p.x0[k:k + 1], atol=1e-5, rtol=1e-5)
    for sampler in ('ddim', 'heun'):
        xs = sample(G, x, ts=time_grid(sch, 2), sampler=sampler)
        assert xs.shape == x.shape and torch.isfinite(xs).all()


def test_conditional_teacher_and_return_attn():
    T = _teacher(num_classes=10, seed=3)
    G = AttentionGuidedTeacher(T, resolution=8)
    y = torch.tensor([0, 5, 9])
    p = G(_x(), torch.tensor([0.2, 1., 20.]), cond=y, return_attn=True)
    assert p.x0.shape == (3, 3, 32, 32) and torch.isfinite(p.x0).all() and torch.isfinite(p.eps).all()
    assert p.attn is not None and {m.resolution for m in p.attn} == {16, 8}
    # the condition reaches both passes: another label changes the guided prediction
    assert not torch.allclose(G(_x(), 1., cond=torch.tensor([1, 1, 1])).x0, G(_x(), 1., cond=torch.tensor([2, 2, 2])).x0)


def test_missing_attention_resolution_is_a_clear_error():
    T = _teacher()
    with pytest.raises(ValueError, match='no decoder attention at resolution 32'):
        AttentionGuidedTeacher(T, resolution=32)
    with pytest.raises(ValueError, match='no middle attention at resolution 16'):
        AttentionGuidedTeacher(T, resolution=16, place='middle')
    # a denoiser without a UNet config: the error comes at the first call, from the attention maps themselves
    class Bare(nn.Module):
        def __init__(self, den): super().__init__(); self.den = den; self.schedule = den.schedule
        def forward(self, x, t, cond=None, return_attn=False): return self.den(x, t, cond, return_attn=return_attn)
    G = AttentionGuidedTeacher(Bare(T), resolution=4)
    with pytest.raises(ValueError, match='no attention block'):
        G(_x(), 1.)
    with pytest.raises(ValueError, match='unknown attention-guidance option'):
        guided_teacher_wrapper(strength=0.3)
    with pytest.raises(ValueError, match='psi'):
        AttentionGuidedTeacher(T, psi=-1.)
    with pytest.raises(ValueError, match='blur_sigma'):               # the wrapper checks values before any run starts
        guided_teacher_wrapper(blur_sigma=-3.)


def test_risky_mask_default_block_and_threshold_scale():
    T = _teacher()
    maps = T(_x(), 1., return_attn=True).attn
    m1, a = risky_mask(maps, 32)
    m08, _ = risky_mask(maps, 32, psi=0.8)
    assert m1.shape == (3, 1, 32, 32) and set(m1.unique().tolist()) <= {0., 1.}
    torch.testing.assert_close(a.mean((1, 2, 3)), torch.ones(3))
    assert (m08 >= m1).all() and m08.sum() >= m1.sum()          # a lower threshold marks more pixels


def _ds(n=32):
    from conftest import small_dataset
    return small_dataset(n)


def _run(tmp, method, wrapper, teacher_dir):
    kw = dict(teacher_steps=2, student_steps=1) if method == 'pd' else dict(student_steps=1, N=6)
    return D.distill(load_denoiser(teacher_dir), _ds(), tmp, method=method, max_steps=2, batch_size=4, progress=False,
                     ckpt_every=-1, sample_every=-1, log_every=0, seed=0, teacher_wrapper=wrapper, **kw)


@pytest.mark.parametrize('method', ['pd', 'cd'])
def test_distill_with_guided_teacher(tmp_path, method):
    tdir = export_denoiser(_teacher(nonzero=False), tmp_path / 'teacher', config=dict(data='cifar10-subset'))
    plain = _run(tmp_path / 'plain', method, None, tdir)[-1]
    guided = _run(tmp_path / 'guided', method, guided_teacher_wrapper(psi=1.0, w=0.3, blur_sigma=3.0), tdir)[-1]
    w0 = _run(tmp_path / 'w0', method, guided_teacher_wrapper(w=0.), tdir)[-1]
    sd = {k: load_denoiser(d).net.state_dict() for k, d in dict(plain=plain, guided=guided, w0=w0).items()}
    assert all(torch.equal(sd['plain'][k], sd['w0'][k]) for k in sd['plain']), 'w = 0 must reproduce the unguided run'
    assert any(not torch.equal(sd['plain'][k], sd['guided'][k]) for k in sd['plain']), 'guidance must change the targets'
    den, rec = D.load_student(guided)
    assert rec['method'] == method
    x = D.student_sample(den, torch.randn(2, 3, 32, 32) * 80, rec['steps'], rec['method'])
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()


def test_denoising_l2_matches_a_direct_computation():
    T = _teacher()
    x0 = torch.rand(5, 3, 32, 32) * 2 - 1
    ts = [0.5, 2.]
    got = denoising_l2(T, x0, ts, seed=1, batch_size=2)
    from sferd_nb.diffusion import q_sample
    ref = []
    for k, t in enumerate(ts):
        g = torch.Generator().manual_seed(1000 + k)
        errs = []
        for i in range(0, 5, 2):
            x_t, _ = q_sample(x0[i:i + 2], t, T.schedule, generator=g)
            errs.append((T(x_t, t).x0 - x0[i:i + 2]).pow(2).flatten(1).mean(1).sqrt())
        ref.append(torch.cat(errs).mean())
    torch.testing.assert_close(got, torch.stack(ref))


def test_cli_attention_guidance(tmp_path):
    tdir = export_denoiser(_teacher(nonzero=False), tmp_path / 'teacher', config=dict(data='cifar10-subset'))
    base = ['--teacher', str(tdir), '--teacher-steps', '2', '--max-steps', '1', '--batch-size', '4', '--no-progress',
            '--sample-every', '-1', '--ckpt-every', '-1']
    dirs = main_distill(['--method', 'pd', '--out', str(tmp_path / 'pd'), '--attention-guidance', '--psi', '1.1',
                           '--w', '0.2', '--blur-sigma', '2'] + base)
    cfg = json.loads((Path(dirs[-1]) / 'config.json').read_text())
    assert cfg['attention_guidance'] == dict(psi=1.1, w=0.2, blur_sigma=2.0, resolution=None)
    with pytest.raises(SystemExit, match=r'choose resolution \(--attn-resolution\)'):
        main_distill(['--method', 'cd', '--out', str(tmp_path / 'cd'), '--N', '4', '--attention-guidance',
                        '--attn-resolution', '32'] + base)
    with pytest.raises(SystemExit, match='blur_sigma'):
        main_distill(['--method', 'cd', '--out', str(tmp_path / 'cd2'), '--attention-guidance', '--blur-sigma', '-1'] + base)
