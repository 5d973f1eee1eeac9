"Integration tests for sferd_nb.gdd (issue 17): `sferd-distill --method gdd` runs, resumes bit-exactly and samples in one step."
import json
from pathlib import Path

import pytest
import torch

from sferd_nb.cli import main_distill
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.unet import build_unet
from sferd_nb.io import export_denoiser, load_denoiser, load_student
from sferd_nb.train import load_checkpoint
from sferd_nb import gdd
from sferd_nb.distill import student_sample


def _teacher(tmp_path):
    torch.manual_seed(0)
    net = build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,))
    with torch.no_grad():                                        # no zero-initialised layers: every GDD-I tensor gets gradients
        for p in net.parameters(): p.add_(0.05 * torch.randn_like(p))
    return export_denoiser(Denoiser(net, get_schedule('edm'), 'edm'), tmp_path / 'teacher', dict(data='cifar10-subset'))


def _args(t, out, *extra):
    return ['--method', 'gdd', '--teacher', str(t), '--out', str(out), '--max-steps', '30', '--batch-size', '4',
            '--ckpt-every', '10', '--log-every', '10', '--no-progress', '--device', 'cpu', *extra]


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
    tsd = load_denoiser(t).net.state_dict()
    frozen = gdd.gdd_i_frozen(den)
    assert frozen and all(torch.equal(ea[n], tsd[n]) for n in frozen)
    assert any(not torch.equal(ea[n], tsd[n]) for n in ea if n not in frozen)
    assert list((straight / 'samples').glob('*.png'))


def test_gdd_flags_are_refused_for_other_methods(tmp_path):
    t = _teacher(tmp_path)
    with pytest.raises(SystemExit, match='--gamma'):
        main_distill(['--method', 'pd', '--teacher', str(t), '--out', str(tmp_path / 'pd'), '--max-steps', '1',
                      '--batch-size', '4', '--no-progress', '--device', 'cpu', '--gamma', '1'])
    with pytest.raises(SystemExit, match='unknown discriminator'):
        main_distill(_args(t, tmp_path / 'bad', '--disc', 'vgg'))


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
    assert seen == [('full', list(ABLATION) + ['gdd']), ('quick', list(PRESETS['quick']['methods']) + ['gdd']),
                    ('full', ['cd', 'gdd'])]
    with pytest.raises(SystemExit, match="already in --methods"):
        cli.main_demo(['--methods', 'gdd', '--gdd', '--out', str(tmp_path / 'd')])
