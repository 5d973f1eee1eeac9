"The shipped course teachers (issue 4): they load, sample, and are clearly better than noise / an untrained net."
import pytest
import torch

from sferd_nb.data import data_dir, load_cifar10_subset, to_model_range
from sferd_nb.diffusion import Denoiser, q_sample
from sferd_nb.samplers import prior_sample, sample
from sferd_nb.io import load_denoiser
from sferd_nb.unet import UNet

TEACHERS = ['cifar10_uncond', 'cifar10_cond']

@pytest.fixture(scope='module')
def real():
    return to_model_range(load_cifar10_subset()['x_test'][:64])

@pytest.mark.parametrize('name', TEACHERS)
def test_teacher_ships_with_card(name):
    d = data_dir() / 'teachers' / name
    for f in ('model.safetensors', 'config.json', 'MODEL_CARD.md', 'samples.png', 'metrics.jsonl'):
        assert (d / f).is_file(), f'{d / f} is missing'
    card = (d / 'MODEL_CARD.md').read_text()
    for key in ('command', 'hardware', 'wall time', 'final training loss'): assert key in card

@pytest.mark.parametrize('name', TEACHERS)
def test_teacher_samples_are_not_noise(name, real):
    torch.manual_seed(0)
    den = load_denoiser(data_dir() / 'teachers' / name)
    ncls = den.net.num_classes
    cond = torch.arange(32) % ncls if ncls else None
    x_T = prior_sample(den.schedule, (32, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    x = sample(den, x_T, 16, sampler='ddim', cond=cond)
    assert x.shape == (32, 3, 32, 32) and torch.isfinite(x).all()
    # per-channel statistics of the samples are close to the data's (pure noise would have std ~ 1 and clip)
    m_s, m_r = x.clamp(-1, 1).mean((0, 2, 3)), real.mean((0, 2, 3))
    s_s, s_r = x.clamp(-1, 1).std((0, 2, 3)), real.std((0, 2, 3))
    assert (m_s - m_r).abs().max() < 0.25, (m_s, m_r)
    assert ((s_s / s_r) > 0.6).all() and ((s_s / s_r) < 1.5).all(), (s_s, s_r)
    # neighbouring pixels are correlated as in images (white noise has correlation ~ 0)
    corr = torch.corrcoef(torch.stack([x[..., :, 1:].flatten(), x[..., :, :-1].flatten()]))[0, 1]
    assert corr > 0.7, corr

@pytest.mark.parametrize('name', TEACHERS)
def test_teacher_denoises_better_than_untrained(name, real):
    den = load_denoiser(data_dir() / 'teachers' / name)
    torch.manual_seed(0)
    fresh = Denoiser(UNet(**den.net.config), den.schedule, parameterization=den.parameterization).eval()
    cond = torch.arange(len(real)) % 10 if den.net.num_classes else None
    g = torch.Generator().manual_seed(1)
    errs = {}
    with torch.no_grad():
        for sigma in (0.2, 1.0, 5.0):
            x_t, _ = q_sample(real, sigma, den.schedule, generator=g)
            errs[sigma] = tuple((d(x_t, sigma, cond=cond).x0 - real).pow(2).mean().item() for d in (den, fresh))
    for sigma, (e_trained, e_fresh) in errs.items():
        assert e_trained < 0.8 * e_fresh, (sigma, errs)
