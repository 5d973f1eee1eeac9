"Integration tests for sferd_nb.gdd (issue 17): `sferd-distill --method gdd` runs, resumes bit-exactly and samples in one step."
import dataclasses
import json, re
from pathlib import Path

import pytest
import torch

from sferd_nb.cli import main_distill
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.unet import build_unet
from sferd_nb.io import load_denoiser, load_student
from sferd_nb.train import load_checkpoint
from sferd_nb import gdd
from sferd_nb.distill import student_sample
from conftest import distill_in_one_and_two_processes, export_tiny_teacher, one_and_two_processes as _one_and_two_processes   # shared with the PD/CD and SGP tests


def _teacher(tmp_path):                                          # no zero-initialised layers: every GDD-I tensor gets gradients
    return export_tiny_teacher(tmp_path / 'teacher', perturb=0.05)


def _args(t, out, *extra):
    return ['--method', 'gdd', '--teacher', str(t), '--out', str(out), '--max-steps', '30', '--batch-size', '4',
            '--ckpt-every', '10', '--log-every', '10', '--no-progress', '--device', 'cpu', '--d-channels', '16', *extra]   # narrow D heads: the same code, less time


class _Crash(Exception): pass


def _same(u, v):
    if isinstance(u, torch.Tensor): return torch.equal(u, v)
    if isinstance(u, dict): return u.keys() == v.keys() and all(_same(u[k], v[k]) for k in u)
    if isinstance(u, (list, tuple)): return len(u) == len(v) and all(_same(x, y) for x, y in zip(u, v))
    return u == v


def test_gdd_cli_resume_is_exact_and_samples(tmp_path, monkeypatch):
    t = _teacher(tmp_path)
    straight = Path(main_distill(_args(t, tmp_path / 'a'))[0])
    # the same run stopped after step 20 (checkpoints every 10 steps), then resumed to 30 by the command
    orig = gdd.GANTrainer.train_step
    def crashing(self, micro):
        if self.step == 20: raise _Crash()
        return orig(self, micro)
    monkeypatch.setattr(gdd.GANTrainer, 'train_step', crashing)
    with pytest.raises(_Crash):
        main_distill(_args(t, tmp_path / 'b'))
    monkeypatch.setattr(gdd.GANTrainer, 'train_step', orig)
    sub = tmp_path / 'b' / 'gdd'
    assert load_checkpoint(sub)['step'] == 20 and not (sub / 'model.safetensors').exists()
    resumed = Path(main_distill(_args(t, tmp_path / 'b', '--resume'))[0])
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a['step'] == b['step'] == 30
    for key in ('model', 'ema', 'optimizer', 'extra'):               # G, its EMA and Adam; D and D's Adam
        assert _same(a[key], b[key]), f'{key} differs between the resumed and the uninterrupted run'
    assert a['extra']['_extra_state']['d_opt']['state'], "D's optimiser state is not in the checkpoint"
    ea, eb = load_denoiser(straight).net.state_dict(), load_denoiser(resumed).net.state_dict()
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    # the export: a gdd-generator that samples in one step; GDD-I left the frozen weights as the teacher's
    cfg = json.loads((straight / 'config.json').read_text())
    assert cfg['type'] == 'gdd-generator' and cfg['distill']['method'] == 'gdd' and cfg['distill']['freeze'] == 'gdd-i'
    den, rec = load_student(straight)
    assert den.parameterization == 'cm' and rec['steps'] == 1
    x = student_sample(den, torch.randn(2, 3, 32, 32) * 80, 1, rec)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
    import sferd_nb                                                   # the front door: a GDD generator is a Model too
    m = sferd_nb.load(straight, 'cpu')
    xs = m.sample(2, seed=0, batch_size=2)
    assert (m.method, m.steps, m.nfe) == ('gdd', 1, 1) and xs.shape == (2, 3, 32, 32) and torch.isfinite(xs).all()
    assert torch.equal(xs, m.sample(2, seed=0, batch_size=2))
    tsd = load_denoiser(t).net.state_dict()
    frozen = gdd.gdd_i_frozen(den)
    assert frozen and all(torch.equal(ea[n], tsd[n]) for n in frozen)
    assert any(not torch.equal(ea[n], tsd[n]) for n in ea if n not in frozen)
    assert list((straight / 'samples').glob('*.png'))


def test_gdd_flags_are_refused_for_other_methods(tmp_path, capsys):
    t = _teacher(tmp_path)
    with pytest.raises(SystemExit, match='--gamma'):
        main_distill(['--method', 'pd', '--teacher', str(t), '--out', str(tmp_path / 'pd'), '--max-steps', '1',
                      '--batch-size', '4', '--no-progress', '--device', 'cpu', '--gamma', '1'])
    assert not (tmp_path / 'pd').exists()                          # refused before the output folder is made
    with pytest.raises(SystemExit) as e:                            # the choices of GDDSettings.disc, checked by argparse
        main_distill(_args(t, tmp_path / 'bad', '--disc', 'vgg'))
    assert e.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err
    with pytest.raises(ValueError, match='unknown discriminator'):  # the same check in Python
        gdd._gamma(dict(disc='vgg'))


def test_demo_gdd_row_has_the_same_budget_and_one_step(tmp_path):
    "`sferd-demo --quick --methods pd,gdd`: GDD gets PD's optimiser budget, samples with 1 step and is named in the table and report."
    from sferd_nb.cli import main_demo
    from sferd_nb.demo import PRESETS
    out = tmp_path / 'demo'
    rows = main_demo(['--quick', '--methods', 'pd,gdd', '--teacher', str(_teacher(tmp_path)), '--out', str(out), '--no-progress',
                      '--device', 'cpu'])
    r = {x['name']: x for x in rows}
    assert list(r) == ['teacher', 'pd', 'gdd']
    p = PRESETS['quick']
    budget = p['steps_per_stage'] * (p['teacher_steps'].bit_length() - p['final_steps'].bit_length())   # PD's halvings
    assert r['pd']['budget_steps'] == r['gdd']['budget_steps'] == budget
    assert load_checkpoint(out / 'gdd' / 'gdd')['step'] == budget                 # GDD really ran that many G+D steps
    assert (r['gdd']['steps'], r['gdd']['nfe']) == (1, 1)
    assert 'GDD (one step, GAN)' in (out / 'report.md').read_text()
    assert (out / r['gdd']['grid']).exists()


def test_demo_presets():
    "`make demo`'s preset is the course protocol (`full`, notebooks 09 and 12) at half its budget: the same training, sampling and FID settings."
    from sferd_nb.demo import PRESETS, run_demo
    import inspect
    assert inspect.signature(run_demo).parameters['preset'].default == 'demo'
    halved = ('steps_per_stage', 'denoise_images')
    assert {k: v for k, v in PRESETS['demo'].items() if k not in halved} == {k: v for k, v in PRESETS['full'].items() if k not in halved}
    assert all(2 * PRESETS['demo'][k] == PRESETS['full'][k] for k in halved)


def test_demo_sgp_budget(tmp_path, monkeypatch):
    "sgp_budget: 'shared' (the SGP stage inside the base method's budget: equal total steps) or 'extra' (on top: equal base steps)."
    from sferd_nb import demo
    seen = {}
    monkeypatch.setattr(demo, 'distill', lambda teacher, ds, out, *, method, max_steps, **k: seen.update({out.name: max_steps}) or [out])
    got = {}
    for m in ('pd', 'sferd-pd', 'cd', 'sferd-cd'):
        for mode in ('shared', 'extra'):
            budget = demo.distill_method(None, None, method=m, out_dir=tmp_path / f'{m}_{mode}', p=dict(demo.PRESETS['full'], sgp_budget=mode))[2]
            got[m, mode] = (seen[f'{m}_{mode}'], budget)                  # (steps per stage, total optimiser steps)
    assert got == {('pd', 'shared'): (80, 80), ('pd', 'extra'): (80, 80), ('cd', 'shared'): (80, 80), ('cd', 'extra'): (80, 80),
                   ('sferd-pd', 'shared'): (40, 80), ('sferd-pd', 'extra'): (80, 160),
                   ('sferd-cd', 'shared'): (40, 80), ('sferd-cd', 'extra'): (80, 160)}, got
    with pytest.raises(ValueError, match="sgp_budget must be 'shared'"):
        demo.run_demo(tmp_path / 'out', sgp_budget='both', progress=False)
    assert not (tmp_path / 'out').exists()


def test_demo_gdd_flag(tmp_path, monkeypatch):
    "--ablation --gdd: the paper's eight rows and GDD as the ninth; ABLATION itself stays the paper's eight; bad input is one line."
    from sferd_nb import cli
    from sferd_nb.demo import ABLATION, METHOD_NAMES, PRESETS
    assert len(ABLATION) == 8 and 'gdd' not in ABLATION and METHOD_NAMES['gdd'] == 'GDD (one step, GAN)'
    seen = []
    monkeypatch.setattr(cli, 'run_demo', lambda out, teacher, preset, methods, *a, **k: seen.append((preset, methods)) or [])
    monkeypatch.setattr(cli, 'format_table', lambda rows: '')
    cli.main_demo(['--ablation', '--gdd', '--out', str(tmp_path / 'a')])
    cli.main_demo(['--quick', '--gdd', '--out', str(tmp_path / 'b')])
    cli.main_demo(['--methods', 'cd,gdd', '--out', str(tmp_path / 'c')])
    cli.main_demo(['--preset', 'full', '--gdd', '--out', str(tmp_path / 'e')])
    assert seen == [('demo', list(ABLATION) + ['gdd']), ('quick', list(PRESETS['quick']['methods']) + ['gdd']),
                    ('demo', ['cd', 'gdd']), ('full', list(PRESETS['full']['methods']) + ['gdd'])]
    with pytest.raises(SystemExit, match="--quick means --preset quick"):
        cli.main_demo(['--quick', '--preset', 'full', '--out', str(tmp_path / 'f')])
    with pytest.raises(SystemExit, match="already in --methods"):
        cli.main_demo(['--methods', 'gdd', '--gdd', '--out', str(tmp_path / 'd')])


def _pre_bn_bias(name) -> bool:
    "A projected-D head's conv bias right before a BatchNorm (main.0, main.3, ...: conv, BatchNorm, LeakyReLU per down block)."
    m = re.search(r'\.main\.(\d+)\.bias$', str(name))
    return bool(m) and int(m.group(1)) % 3 == 0


DISCS = ('projected', 'resnet', 'teacher')


def test_gdd_ddp_equals_single_process(tmp_path):
    """For every discriminator, 2 gloo processes x 4 = 1 process x 8: G (and its EMA), D and D's Adam agree to float tolerance.
    Latents, DiffAugment and the teacher-feature D's noise are drawn for the global batch (each rank its [rank::world] share)
    and the projected D's BatchNorm takes global-batch statistics, so the runs see the same numbers; only the order of float
    additions differs (per-rank means averaged by all_reduce vs one mean of 8), hence not bit-exact. One launch of each kind
    runs the three discriminators in turn (three interpreters instead of nine)."""
    t = _teacher(tmp_path)
    one, two = distill_in_one_and_two_processes(tmp_path, t, {d: dict(method='gdd', disc=d, d_channels=16, r1_every=2, max_steps=3, batch_size=8,
                                                                   ckpt_every=0) for d in DISCS})   # ckpt 0: the final checkpoint (G, EMA, D, D's Adam) is kept
    for disc in DISCS: _check_gdd_ddp(one / disc, two / disc, t, disc)


def _check_gdd_ddp(one, two, t, disc):
    "The checkpoints of the 1-process and the 2-process GDD runs with discriminator `disc` agree (see the test above)."
    # The projected D's BatchNorm sums the statistics over ranks where one process calls torch's kernel, so the two runs round
    # apart by ~1e-7 (GlobalBatchNorm2d itself is exact: float64, test_global_batch_norm_is_one_process_batch_norm). Adam with
    # beta1 = 0 moves an element by ~lr * sign(g) in its first steps, so where a gradient is near zero that rounding can flip
    # the sign and move the element up to 2 * lr per step; after a flip the later gradients differ too. Whether any element
    # flips in 3 steps depends on the torch build's rounding (none of G's 345,587 elements with torch 2.13; 44 with torch
    # 2.3.1), so the projected runs are compared by how many elements moved apart, not by the largest difference: at most
    # 0.1 % of the elements of G, its EMA and D's trained weights, and at most 15 % of any one tensor, may differ by more
    # than lr / 2, none by more than 2 * 3 steps * lr, and G's and D's Adam states (the last gradients and their squares)
    # agree to 10 % relative (L2) per tensor. Measured with rank-local BatchNorm statistics in place of GlobalBatchNorm2d (a
    # wrong DDP reduction): 4.3 % of G's and 14 % of D's elements differ by more than lr / 2, up to 44 % of one tensor, and
    # the Adam states by up to 33 % (G) and 55 % (D); with the right ones at most 0.013 %, 0.005 %, 3.1 % (one element of
    # 32), 4.7 % and 3.2 % with torch 2.3.1, and 0 %, 0 %, 0 %, 0.7 % and 0.7 % with torch 2.13.
    # The other discriminators agree to 1e-5 in every element.
    lr, steps = 1e-4, 3                                          # GDD's default lr (G's, and D's as d_lr is unset); max_steps
    # a conv bias right before BatchNorm has a gradient that is 0 in exact arithmetic: Adam moves it by ~lr per step on rounding
    # noise, so such biases (and the BatchNorm running means that follow them) are not compared: any two runs may differ
    # there by the most 3 Adam steps can move a weight. The check that their gradients are ~0 is in
    # test_projected_d_gradients_are_one_process_gradients, where one D step from the same weights agrees to 1e-4.
    skip = lambda k: disc == 'projected' and (_pre_bn_bias(k) or re.search(r'\.main\.\d+\.running_mean$', str(k)))
    a, b = load_checkpoint(one / 'gdd'), load_checkpoint(two / 'gdd')
    assert a['step'] == b['step'] == 3, disc
    ta = {f'net.{k}': v for k, v in load_denoiser(t).net.state_dict().items()}
    assert any(k in ta and not torch.equal(v, ta[k]) for k, v in a['model'].items()), f'G did not train ({disc})'
    pairs = [('G', a['model'], b['model']), ('EMA', a['ema'], b['ema']), ('D', a['extra'], b['extra'])]
    ka = a['extra']['_extra_state']['d_opt']['state']; kb = b['extra']['_extra_state']['d_opt']['state']
    assert ka and ka.keys() == kb.keys()
    pairs += [(f'D Adam {i}.{n}', {0: ka[i][n]}, {0: kb[i][n]}) for i in ka for n in ('exp_avg', 'exp_avg_sq')]
    d_names = [k for k in a['extra'] if k.startswith('D.') and isinstance(a['extra'][k], torch.Tensor) and not   # D's trained
               re.search(r'(running_\w+|num_batches_tracked|_u|_v|^D\.proj\..*)$', k)]                       # parameters, in order
    assert len(d_names) == len(ka), (len(d_names), len(ka))
    if disc == 'projected':                                      # G's Adam states too, as its weights are compared by share
        ga, gb = a['optimizer']['state'], b['optimizer']['state']
        assert ga and ga.keys() == gb.keys()
        pairs += [(f'G Adam {i}.{n}', {0: ga[i][n]}, {0: gb[i][n]}) for i in ga for n in ('exp_avg', 'exp_avg_sq')]
    for what, u, v in pairs:
        ts = [k for k in u if isinstance(u[k], torch.Tensor)]
        assert ts and sorted(ts) == sorted(k for k in v if isinstance(v[k], torch.Tensor)), (disc, what)
        if disc != 'projected':
            bad = {k: d for k in ts if (d := (u[k].float() - v[k].float()).abs().max().item()) > 1e-5}
        elif ' Adam ' in what:                                   # the last gradients (beta1 = 0) and their squares: relative
            if what.startswith('D') and _pre_bn_bias(d_names[int(what.split()[2].split('.')[0])]): continue
            bad = {k: d for k in ts if (d := ((u[k] - v[k]).norm() / u[k].norm().clamp_min(1e-12)).item()) > 0.1}
        else:                                                    # G, EMA, D: how many elements moved apart
            ts = [k for k in ts if not skip(k)]
            diff = {k: (u[k].float() - v[k].float()).abs() for k in ts}
            counted = [k for k in ts if what != 'D' or k in d_names]   # D: its trained weights (not the frozen projections,
            moved = {k: (diff[k] > lr / 2).double().mean().item() for k in counted}   # spectral-norm vectors or statistics)
            share = sum(moved[k] * diff[k].numel() for k in counted) / sum(diff[k].numel() for k in counted)
            top = max(d.max().item() for d in diff.values())
            bad = {k: m for k, m in moved.items() if m > 0.15}   # per tensor: a small one wrong whole would hide in the share
            if share > 1e-3 or top > 2 * steps * lr: bad.update({'share above lr/2': share, 'largest': top})
        assert not bad, (disc, what, bad)


def _timm_importable() -> bool:
    try:
        import timm  # noqa: F401
        return True
    except Exception:                                           # absent, or e.g. a torchvision built for another torch
        return False


def test_disc_timm_settings_are_checked(tmp_path):
    "--disc timm needs a backbone and a local weights file; the timm flags are refused with another discriminator; one-line errors."
    t = _teacher(tmp_path)
    with pytest.raises(SystemExit, match='needs disc_backbone=NAME'):
        main_distill(_args(t, tmp_path / 'a', '--disc', 'timm', '--disc-backbone', 'efficientnet_lite0'))
    with pytest.raises(SystemExit, match=r"disc_weights \(--disc-weights\) only apply to disc='timm' or 'projected', not 'resnet'"):
        main_distill(_args(t, tmp_path / 'b', '--disc', 'resnet', '--disc-weights', str(tmp_path / 'w.safetensors')))
    for flags in (['--disc-weights', str(tmp_path / 'w.safetensors')], ['--disc-backbone', 'vgg16_bn,tf_efficientnet_lite0',
                  '--disc-weights', str(tmp_path / 'w.safetensors')], ['--disc-resize', '224']):   # projected (the default): one file per name
        with pytest.raises(SystemExit, match=r'one local file per name; without the three settings it uses the teacher'):
            main_distill(_args(t, tmp_path / 'p', *flags))
    with pytest.raises(SystemExit, match='no weights file'):
        main_distill(_args(t, tmp_path / 'c', '--disc', 'timm', '--disc-backbone', 'efficientnet_lite0',
                           '--disc-weights', str(tmp_path / 'nope.safetensors')))


def test_disc_timm_runs_from_a_local_file_or_says_timm_is_missing(tmp_path):
    """Where timm imports: a real efficientnet_lite0 features_only backbone, randomly initialised and saved to a temp safetensors
    file (the whole classifier, as a user's checkpoint would be), drives 2 GDD steps; its weights are the file's, D's heads train,
    and the run exports. Elsewhere: the command exits with the one-line 'pip install sferd_nb[timm]' (or torchvision) error."""
    from safetensors.torch import save_file
    t = _teacher(tmp_path)
    weights = tmp_path / 'effnet.safetensors'
    args = ['--disc', 'timm', '--disc-backbone', 'efficientnet_lite0', '--disc-weights', str(weights), '--max-steps', '2',
            '--ckpt-every', '0']
    if not _timm_importable():
        save_file({'w': torch.zeros(1)}, weights)
        with pytest.raises(SystemExit, match=r"sferd-distill: error: .*(sferd_nb\[timm\]|torchvision)"):
            main_distill(_args(t, tmp_path / 'run', *args))
        return
    import timm
    torch.manual_seed(3)
    full = timm.create_model('efficientnet_lite0', pretrained=False)
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, weights)
    run = Path(main_distill(_args(t, tmp_path / 'run', *args))[0])
    rec = json.loads((run / 'config.json').read_text())['distill']
    assert (rec['disc'], rec['disc_backbone'], rec['disc_weights']) == ('timm', 'efficientnet_lite0', str(weights))
    bb = gdd.timm_backbone('efficientnet_lite0', weights)
    fsd = full.state_dict()
    assert all(torch.equal(v, fsd[k]) for k, v in bb.state_dict().items())   # features_only keys are the classifier's
    ck = load_checkpoint(run)
    assert ck['step'] == 2 and not any('backbone' in k for k in ck['extra'])   # the backbone is not checkpointed
    with torch.random.fork_rng(devices=[]):                     # D at initialisation, as gdd_loss seeds it
        torch.manual_seed(gdd.mix_seed(0, 23))
        D0 = gdd.make_discriminator('timm', load_denoiser(t), channels=None, backbone='efficientnet_lite0', weights=weights)
    assert set(D0.state_dict()) == {k[2:] for k in ck['extra'] if k.startswith('D.')}
    assert any(not torch.equal(v, ck['extra'][f'D.{k}']) for k, v in D0.state_dict().items())   # D's heads trained


def test_gan_training_is_the_trainers_step_with_piecewise_lr_scale(tmp_path):
    "GANTrainer overrides only the two-player backward: a piecewise lr_scale (the SGP's form) follows the Trainer's schedule."
    from torch import nn
    from torch.utils.data import TensorDataset
    from sferd_nb.train import TrainConfig, Trainer
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    class D_(nn.Module):
        def __init__(self): super().__init__(); self.f = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
        def forward(self, x, cond=None): return self.f(x).squeeze(1)
    D = D_()
    loss = gdd.GANLoss(D, latent_shape=(2,), lr=1e-3)
    groups = [{'params': list(G[0].parameters()), 'lr_scale': [[0, 0.0], [2, 1.0]]},     # frozen for 2 steps, then trained
              {'params': list(G[2].parameters()), 'lr_scale': 0.5}]
    cfg = TrainConfig(lr=1e-2, warmup_steps=0, batch_size=8, max_steps=4, log_every=1, sample_every=-1, ckpt_every=0,
                      ema_decay=0., ema_halflife_kimg=None, ema_rampup=None, amp='none')
    tr = gdd.GANTrainer(G, loss, cfg, tmp_path / 'gan', param_groups=groups)
    assert type(tr).train_step is Trainer.train_step                     # one training step for every method
    w0 = G[0].weight.detach().clone()
    ds = TensorDataset(torch.randn(64, 2), torch.zeros(64, dtype=torch.long))
    tr.fit(ds, max_steps=2, progress=False)
    assert torch.equal(G[0].weight, w0)                                    # lr_scale 0 for steps 0 and 1
    assert [g['lr'] for g in tr.opt.param_groups] == [0.0, 0.5e-2]
    tr.fit(ds, progress=False)
    assert not torch.equal(G[0].weight, w0)
    assert [g['lr'] for g in tr.opt.param_groups] == [1e-2, 0.5e-2]
    assert all('d_loss' in h and 'lr' in h for h in tr.history)
    # the discriminator's optimiser follows the same schedule from its own base lr (here a linear decay)
    loss2 = gdd.GANLoss(D_(), latent_shape=(2,), lr=1e-3)
    base = loss2.d_opt.param_groups[0]['lr']
    tr2 = gdd.GANTrainer(G, loss2, dataclasses.replace(cfg, lr_decay='linear'), tmp_path / 'gan2')
    tr2.fit(ds, max_steps=3, progress=False)                              # the lr of step 2: 1 - 2/4 of the base
    close = lambda a, b: abs(a - b) < 1e-12 * max(1., abs(b))
    assert close(tr2.opt.param_groups[0]['lr'], 0.5e-2) and close(loss2.d_opt.param_groups[0]['lr'], 0.5 * base)


def test_one_step_generator_is_a_prepared_student():
    "GDD's generator starts like every student: no dropout, no label dropout (a conditional teacher's CFG dropout), trainable."
    torch.manual_seed(0)
    net = build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,), num_classes=10, dropout=0.1,
                     label_dropout=0.1)
    T = Denoiser(net, get_schedule('edm'), parameterization='edm').requires_grad_(False).eval()
    G = gdd.one_step_generator(T)
    assert G.net.label_dropout == 0 and G.net.config['label_dropout'] == 0 and T.net.label_dropout == 0.1
    assert all(m.p == 0 for m in G.modules() if isinstance(m, torch.nn.Dropout)) and G.training
    assert all(p.requires_grad for p in G.parameters())


_BN_WORKER = r'''
import sys, torch, torch.distributed as dist
from pathlib import Path
from sferd_nb.train import distributed
from sferd_nb.gdd import GlobalBatchNorm2d
with distributed("cpu"):               # gloo on the CPU; the barrier on the way out
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    g = torch.Generator().manual_seed(0)
    x_all, w_all = torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64), torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64)
    share = slice(rank * 8 // world, (rank + 1) * 8 // world)
    torch.manual_seed(1)
    bn = GlobalBatchNorm2d(4).double(); bn.weight.data.uniform_(0.5, 2); bn.bias.data.uniform_(-1, 1)
    x = x_all[share].clone().requires_grad_(True)
    y = bn(x)
    gx, = torch.autograd.grad((y * w_all[share]).sum(), x, create_graph=True)       # input gradient, then a double backward (R1)
    gx.square().sum().backward()
    out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    torch.save(dict(y=y.detach(), gx=gx.detach(), gw=bn.weight.grad, rm=bn.running_mean, rv=bn.running_var),
               out / f'rank{rank}.pt')
'''


def test_global_batch_norm_is_one_process_batch_norm(tmp_path):
    """GlobalBatchNorm2d (the projected D's BatchNorm) in 2 gloo processes x 4 images = torch's BatchNorm2d on the 8 images in
    one process (float64): outputs, input gradients, a double backward (R1's) into the affine weights, running statistics."""
    one, two = _one_and_two_processes(_BN_WORKER, tmp_path)
    a = torch.load(one / 'rank0.pt'); b = [torch.load(two / f'rank{k}.pt') for k in range(2)]
    for k in ('y', 'gx'): assert torch.allclose(a[k], torch.cat([b[0][k], b[1][k]]), atol=1e-10), k
    for k in ('rm', 'rv'): assert torch.allclose(a[k], b[0][k], atol=1e-12) and torch.allclose(a[k], b[1][k], atol=1e-12), k
    assert torch.allclose(a['gw'], b[0]['gw'] + b[1]['gw'], atol=1e-10)                   # per-rank parts of the sum


_DGRAD_WORKER = r'''
import sys, torch, torch.distributed as dist
from pathlib import Path
from sferd_nb.train import distributed
from sferd_nb.gdd import make_discriminator, d_loss_ns, r1_penalty
from sferd_nb.io import load_denoiser
with distributed("cpu"):               # gloo on the CPU; the barrier on the way out
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    torch.manual_seed(5)
    D = make_discriminator('projected', load_denoiser(sys.argv[1]), channels=16)
    g = torch.Generator().manual_seed(0)
    xr, xf = torch.randn(8, 3, 32, 32, generator=g).clamp(-1, 1), torch.randn(8, 3, 32, 32, generator=g).clamp(-1, 1)
    sh = slice(rank, None, world)                              # this rank's share [rank::world], as draw_global keeps
    out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
    for what in ('d_loss', 'r1'):
        D.zero_grad()
        torch.manual_seed(7)                                   # the teacher-feature noise: drawn for the global batch
        loss = d_loss_ns(D(xr[sh]), D(xf[sh])) if what == 'd_loss' else r1_penalty(D, xr[sh]).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
        for v in grads.values():
            if world > 1: dist.all_reduce(v); v /= world
        if rank == 0: torch.save(grads, out / f'{what}.pt')
'''


def test_projected_d_gradients_are_one_process_gradients(tmp_path):
    """GDD's projected D on the teacher's encoder (GlobalBatchNorm2d in its heads): the gradients of the D loss and of R1 from
    2 gloo processes x 4 images equal those of 1 process x 8 to 1e-4 relative, except the conv biases right before a
    BatchNorm, whose gradient is 0 in exact arithmetic (both runs: rounding noise)."""
    one, two = _one_and_two_processes(_DGRAD_WORKER, tmp_path, _teacher(tmp_path))
    for what in ('d_loss', 'r1'):
        a, b = torch.load(one / f'{what}.pt'), torch.load(two / f'{what}.pt')
        assert a.keys() == b.keys() and len(a) > 10
        pre_bn = {k for k in a if _pre_bn_bias(k)}
        assert pre_bn and all(a[k].abs().max() < 1e-3 * a[k.replace('bias', 'parametrizations.weight.original')].abs().max() for k in pre_bn)
        bad = {k: rel for k in a.keys() - pre_bn if (rel := ((a[k] - b[k]).abs().max() / a[k].abs().max()).item()) > 1e-4}
        assert not bad, (what, bad)


def test_a_class_conditional_discriminator_without_labels_says_so(tmp_path):
    "Every discriminator of a class-conditional teacher refuses a call without labels in one line (the heads on features used to fail on `None.long()`)."
    from sferd_nb.gdd import BackboneFeatureDiscriminator, make_discriminator
    t = load_denoiser(export_tiny_teacher(tmp_path / 'teacher', cond=True))
    x = torch.zeros(2, 3, 32, 32)
    class TwoMaps(torch.nn.Module):                      # a stand-in ImageNet backbone (timm is optional): two feature maps
        def __init__(self):
            super().__init__(); self.a, self.b = torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.Conv2d(8, 8, 3, 2, 1)
        def forward(self, x): return [h := self.a(x), self.b(h)]
    Ds = [make_discriminator(kind, t, channels=16) for kind in ('resnet', 'teacher', 'projected')]
    Ds.append(BackboneFeatureDiscriminator(TwoMaps(), channels=16, num_classes=10))   # its features need no labels
    for D in Ds:
        D(x, torch.tensor([1, 2]))                                                  # with labels: fine
        with pytest.raises(ValueError, match='class-conditional.*pass cond= labels'): D(x)
