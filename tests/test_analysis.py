"Integration tests for sferd_nb.analysis (issue 6): Eq. 8, Pearson, attention reduction, shapes, CLI, bad input."
import json
import math

import numpy as np
import pytest
import torch

from sferd_nb.cli import main_analyze
from sferd_nb import analysis as A
from sferd_nb.data import data_dir
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser, load_denoiser
from sferd_nb.unet import AttentionMap, build_unet


def _den(cond=False, **kw):
    torch.manual_seed(0)
    net = build_unet('tiny', num_classes=10 if cond else 0, model_channels=16, **kw)
    return Denoiser(net, get_schedule('edm'), parameterization='edm').eval()


def _export(tmp_path, name='teacher', cond=False, **kw):
    return export_denoiser(_den(cond, **kw), tmp_path / name, config=dict(data='cifar10-subset', step=0))


@pytest.mark.parametrize('shape', [(5, 3, 2, 4, 4), (2, 7, 3, 8, 8), (9, 1, 10)])
def test_squared_decomposition_exact_on_random_inputs(shape):
    g = torch.Generator().manual_seed(sum(shape))
    eps_hat = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1
    eps = torch.randn(shape[1:], generator=g, dtype=torch.float64)
    d = A.bias_variance(eps_hat, eps)
    torch.testing.assert_close(d.fit_sq, d.var_sq + d.bias_sq, rtol=0, atol=1e-12)
    assert (d.fit <= d.var + d.bias + 1e-12).all()                       # the paper's plain-norm form is a bound
    # an independent computation of the three terms for one sample
    e, n = eps_hat[:, 0].numpy().reshape(shape[0], -1), eps[0].numpy().reshape(-1)
    ebar = e.mean(0)
    assert math.isclose(d.fit_sq[0].item(), ((e - n) ** 2).mean(), rel_tol=1e-12)
    assert math.isclose(d.var_sq[0].item(), ((e - ebar) ** 2).mean(), rel_tol=1e-12)
    assert math.isclose(d.bias_sq[0].item(), ((ebar - n) ** 2).mean(), rel_tol=1e-12)


def test_squared_decomposition_float32_inputs():
    g = torch.Generator().manual_seed(1)
    eps_hat, eps = torch.randn(18, 4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    d = A.bias_variance(eps_hat, eps)                                     # computed in float64 internally
    torch.testing.assert_close(d.fit_sq, d.var_sq + d.bias_sq, rtol=0, atol=1e-12)
    vm = A.variance_maps(eps_hat)
    torch.testing.assert_close(vm.double().mean((0, 2, 3)), d.var_sq, rtol=1e-5, atol=0)


def test_pearson_equals_numpy_corrcoef():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 40, generator=g)
    y = 0.5 * x + torch.randn(6, 40, generator=g)
    r = A.pearson(x, y, start_dim=1)
    for i in range(6):
        assert math.isclose(r[i].item(), np.corrcoef(x[i].numpy(), y[i].numpy())[0, 1], rel_tol=1e-9, abs_tol=1e-12)
    xm, ym = x.reshape(3, 2, 4, 10), y.reshape(3, 2, 4, 10)
    assert math.isclose(A.pearson(xm, ym).item(), np.corrcoef(x.flatten().numpy(), y.flatten().numpy())[0, 1], rel_tol=1e-9)
    with pytest.raises(ValueError, match='equal shapes'):
        A.pearson(x, y[:, :3])


@pytest.mark.parametrize('heads,res,size', [(1, 8, None), (4, 16, 32), (2, 4, 32), (3, 8, 24)])
def test_attention_received_has_mean_one(heads, res, size):
    g = torch.Generator().manual_seed(res + heads)
    probs = torch.softmax(torch.randn(3, heads, res * res, res * res, generator=g) * 4, -1)
    a = A.attention_received(AttentionMap(probs, res, 'decoder', 0), size)
    s = size or res
    assert a.shape == (3, s, s)
    torch.testing.assert_close(a.double().mean((1, 2)), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-6)
    ref = probs.double().mean(1).sum(1).reshape(3, res, res)           # mean over heads, sum over queries
    if size is None: torch.testing.assert_close(a.double(), ref, rtol=1e-5, atol=1e-6)


def test_attention_received_on_real_unet_maps():
    den = _den()
    with torch.no_grad():
        pred = den(torch.randn(2, 3, 32, 32), 1.0, return_attn=True)
    for r in (16, 8):
        m = A.select_attention(pred.attn, resolution=r)
        assert m.place == 'decoder' and m.resolution == r
        a = A.attention_received(m, 32)
        assert a.shape == (2, 32, 32) and torch.isfinite(a).all()
        torch.testing.assert_close(a.double().mean((1, 2)), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    assert A.select_attention(pred.attn).resolution == 16                # default: the highest decoder resolution
    assert A.select_attention(pred.attn, resolution=8, place='middle').place == 'middle'


def test_missing_resolution_is_a_clear_error(tmp_path):
    den = _den(attn_resolutions=(8,))
    with torch.no_grad():
        maps = den(torch.randn(1, 3, 32, 32), 1.0, return_attn=True).attn
    with pytest.raises(ValueError, match=r"no attention block at place='decoder', resolution=16.*\('decoder', 8\)"):
        A.select_attention(maps, resolution=16)
    with pytest.raises(ValueError, match="available"):
        A.analyze(den, torch.zeros(1, 3, 32, 32), steps=2, resolutions=[16])
    t = _export(tmp_path, attn_resolutions=(8,))
    with pytest.raises(SystemExit, match=r"\('middle', 8\)"):
        main_analyze(['--checkpoint', str(t), '--out', str(tmp_path / 'o'), '--num-images', '1', '--eps-draws', '1',
                        '--steps', '2', '--resolutions', '32'])


def test_decoder_without_attention_skips_fig3(tmp_path):
    den = _den(attn_resolutions=())                                      # only the middle block attends
    an = A.analyze(den, torch.zeros(2, 3, 32, 32), steps=3, eps_draws=1)
    assert an['attn'] == {} and an['summary']['fig3c']['resolutions'] == {}
    assert 'no attention' in A.claims_report(an['summary'])
    paths = A.write_analysis(an, tmp_path / 'o')
    assert sorted(paths) == ['eq8', 'fig3a', 'json']


def test_analyze_shapes_and_trajectory():
    den = _den()
    x0 = torch.rand(3, 3, 32, 32) * 2 - 1
    an = A.analyze(den, x0, steps=4, eps_draws=2, seed=3)
    K, N, S = 4, 3, 6
    assert an['eps_hat'].shape == (K, S, 3, 32, 32) and an['eps'].shape == (S, 3, 32, 32)
    assert an['x0'].shape == (N, 3, 32, 32) and an['ts'].shape == (K,)
    assert an['variance_maps'].shape == (K, N, 32, 32)
    for f in ('fit_sq', 'var_sq', 'bias_sq', 'fit', 'var', 'bias'): assert an['eq8'][f].shape == (S,)
    assert an['eq8']['fit_t'].shape == (K, S) and an['fig3a']['fit'].shape == (S,)
    assert sorted(an['attn']) == [8, 16]
    for r in (8, 16):
        assert an['attn'][r].shape == (K, N, 32, 32) and an['corr'][r].shape == (K, N)
    # sample 2 n + d is image n with noise draw d; eps_hat is the denoiser at q_sample(x0, t, eps)
    from sferd_nb.diffusion import q_sample
    k = 2
    with torch.no_grad():
        e = den(q_sample(x0.repeat_interleave(2, 0), an['ts'][k], den.schedule, noise=an['eps'])[0], an['ts'][k]).eps
    torch.testing.assert_close(e, an['eps_hat'][k], rtol=1e-4, atol=1e-5)
    json.dumps(an['summary'])                                              # JSON-ready
    an2 = A.analyze(den, x0, steps=4, eps_draws=2, seed=3)
    torch.testing.assert_close(an2['eps'], an['eps'])                     # seeded
    with pytest.raises(ValueError, match='steps >= 2'):
        A.analyze(den, x0, steps=1)


def test_a_models_own_condition_follows_its_images_through_batches_and_draws():
    """An SGP student's condition (an object with `select`, not a tensor) is cut per batch and repeated per noise draw, as
    class labels are: it used to reach every call whole, a mismatch once B > batch_size or eps_draws > 1."""
    from sferd_nb.samplers import GaussianDenoiser
    class Own:                                                   # a stand-in for SemanticCond: one row per image
        def __init__(self, v): self.v = v
        def select(self, idx): return Own(self.v[idx])
    seen = []
    class Checked(GaussianDenoiser):
        def forward(self, x_t, t, cond=None, **kw):
            assert len(cond.v) == len(x_t); seen.append(cond.v.tolist())
            return super().forward(x_t, t, **kw)
    den = Checked(get_schedule('edm'), torch.zeros(3, 4, 4), 0.5)
    x0 = torch.zeros(5, 3, 4, 4)
    A.analyze(den, x0, cond=Own(torch.arange(5)), steps=2, eps_draws=2, resolutions=(), batch_size=4)
    assert seen[:3] == [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4]]       # 10 samples (image i twice) in batches of 4 at the first time
    tr = A.predict_trajectory(GaussianDenoiser(get_schedule('edm'), torch.zeros(3, 4, 4), 0.5), x0, steps=2,
                              cond=torch.arange(5), batch_size=2, resolutions=())
    assert tr.eps_hat.shape == (2, 5, 3, 4, 4)                                          # class labels as before


def test_cli_writes_figures_and_json(tmp_path):
    t = _export(tmp_path)
    (t / 'metrics.jsonl').write_text('\n'.join(json.dumps(dict(step=s, loss=1.0 / (s + 1))) for s in range(5)))
    out = tmp_path / 'out'
    paths = main_analyze(['--checkpoint', str(t), '--out', str(out), '--num-images', '2', '--eps-draws', '2',
                            '--steps', '3', '--seed', '1'])
    assert sorted(paths) == ['eq8', 'fig2a', 'fig3a', 'fig3b', 'fig3c', 'json']
    for k in ('eq8', 'fig2a', 'fig3a', 'fig3b', 'fig3c'):
        assert (out / f'{k}.png').read_bytes()[:4] == b'\x89PNG'
    rep = json.loads((out / 'analysis.json').read_text())
    assert rep['num_images'] == 2 and rep['num_samples'] == 4 and rep['steps'] == 3
    assert sorted(rep['fig3c']['resolutions']) == ['16', '8']
    assert all(len(v['curve']) == 3 for v in rep['fig3c']['resolutions'].values())
    assert abs(rep['eq8_squared']['max_identity_error']) < 1e-9
    assert rep['fig2a']['teacher']['final_step'] == 4
    assert all(math.isfinite(v) for v in rep['eq8_squared'].values())


def test_cli_conditional_checkpoint_and_bad_path(tmp_path):
    t = _export(tmp_path, 'cteacher', cond=True)
    paths = main_analyze(['--checkpoint', str(t), '--out', str(tmp_path / 'o'), '--num-images', '2', '--eps-draws', '1',
                            '--steps', '2'])
    rep = json.loads(paths['json'].read_text())
    assert rep['conditional'] is True and 'fig2a' not in rep
    with pytest.raises(SystemExit, match='does not exist'):
        main_analyze(['--checkpoint', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o2')])
    with pytest.raises(SystemExit, match='num-images'):
        main_analyze(['--checkpoint', str(t), '--out', str(tmp_path / 'o3'), '--num-images', '0'])


def _shipped():
    root = data_dir() / 'teachers'
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.mark.parametrize('path', _shipped(), ids=lambda p: p.name)
def test_shipped_teachers_give_finite_outputs(path):
    den = load_denoiser(path)
    x0, y, _ = A.load_images('cifar10-subset', split='train', num=2, seed=0)
    an = A.analyze(den, x0, cond=y if den.net.num_classes else None, steps=3, eps_draws=2)
    assert an['eps_hat'].shape == (3, 4, 3, 32, 32) and torch.isfinite(an['eps_hat']).all()
    assert an['variance_maps'].shape == (3, 2, 32, 32) and torch.isfinite(an['variance_maps']).all()
    assert an['attn'], f"{path.name}: no decoder attention maps"
    for r, a in an['attn'].items():
        assert a.shape == (3, 2, 32, 32) and torch.isfinite(a).all()
        torch.testing.assert_close(a.double().mean((2, 3)), torch.ones(3, 2, dtype=torch.float64), rtol=0, atol=1e-5)
        assert torch.isfinite(an['corr'][r]).all()
    for v in an['eq8'].values(): assert torch.isfinite(v).all()
    assert (path / 'metrics.jsonl').is_file(), f"{path.name}: the shipped teacher should carry metrics.jsonl"
    assert len(A.read_metrics(path)['loss']) > 0
