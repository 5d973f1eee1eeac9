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


def _timm_importable() -> bool:
    try:
        import timm  # noqa: F401
        return True
    except Exception:                                           # absent, or e.g. a torchvision built for another torch
        return False


def test_disc_timm_settings_are_checked(tmp_path):
    "--disc timm needs a backbone and a local weights file; the timm flags are refused with another discriminator; one-line errors."
    t = _teacher(tmp_path)
    with pytest.raises(SystemExit, match='needs --disc-backbone NAME'):
        main_distill(_args(t, tmp_path / 'a', '--disc', 'timm', '--disc-backbone', 'efficientnet_lite0'))
    with pytest.raises(SystemExit, match='only apply to --disc timm'):
        main_distill(_args(t, tmp_path / 'b', '--disc-weights', str(tmp_path / 'w.safetensors')))
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
    assert ck['step'] == 2 and not any(k.startswith('D.backbone') for k in ck['extra'])   # the backbone is not checkpointed
    D0 = gdd.make_discriminator('timm', load_denoiser(t), None, backbone='efficientnet_lite0', weights=weights)
    assert any(k.startswith('D.heads') for k in ck['extra'])
    assert set(D0.state_dict()) == {k[2:] for k in ck['extra'] if k.startswith('D.')}
