"Integration tests for sferd_nb.metrics and sferd_nb.demo (issue 8): metric sanity, extractor naming, errors, quick demo."
import json, time
from pathlib import Path

import pytest
import torch

from sferd_nb.cli import main_eval, main_demo
from sferd_nb import metrics as M
from sferd_nb.data import get_dataset, to_model_range
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser
from sferd_nb.unet import build_unet

@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv(M.INCEPTION_ENV, raising=False)
    monkeypatch.delenv(M.FID_NETWORK_ENV, raising=False)
    monkeypatch.setattr(M, 'fid_helper_path', lambda: None)     # 'auto' = the stand-in here (the real network: test_trust.py)

def _teacher(tmp_path):
    from conftest import export_tiny_teacher
    return export_tiny_teacher(tmp_path / 'teacher')

@pytest.fixture(scope='module')
def ext(): return M.load_extractor('standin')

@pytest.fixture(scope='module')
def test_feats(ext):
    x = get_dataset('cifar10-subset', split='test', flip=False).images
    return x, M.extract(ext, x)

def test_shipped_classifier_is_trained_and_documented():
    cfg = json.loads((M._default_classifier_dir() / 'config.json').read_text())
    assert cfg['test_accuracy'] > 0.4 and 'train_classifier.py' in cfg['command']
    assert 'accuracy' in (M._default_classifier_dir() / 'README.md').read_text().lower()
    assert f"{100 * cfg['test_accuracy']:.1f}%" in M.load_classifier().name

def test_fid_ranks_real_halves_noise_blur(ext, test_feats):
    from sferd_nb.guidance import gaussian_blur
    x, (f, logits) = test_feats
    a, b = M.gaussian_stats(f[0::2]), M.gaussian_stats(f[1::2])
    self_fid = M.frechet_distance(*M.gaussian_stats(f), *M.gaussian_stats(f))
    halves = M.frechet_distance(*a, *b)
    g = torch.Generator().manual_seed(0)
    noise = M.frechet_distance(*a, *M.gaussian_stats(M.extract(ext, torch.randint(0, 256, x[1::2].shape, generator=g,
                                                                                    dtype=torch.uint8))[0]))
    blur = M.frechet_distance(*a, *M.gaussian_stats(M.extract(ext, gaussian_blur(to_model_range(x[1::2]), 1.5, 7))[0]))
    assert abs(self_fid) < 1e-6 * max(halves, 1)
    assert halves < 0.5 * blur and halves < 0.2 * noise, (halves, blur, noise)
    # the trained classifier recognises real images: IS well above 1 (out of 10)
    assert M.inception_score(logits)[0] > 2.5         # 3.06 with the shipped weights

def test_inception_score_closed_forms():
    conf = torch.eye(10).repeat(30, 1) * 1e4
    assert M.inception_score(conf, splits=1)[0] == pytest.approx(10, rel=1e-6)
    assert M.inception_score(conf, splits=3)[0] == pytest.approx(10, rel=1e-6)
    assert M.inception_score(torch.ones(40, 10), splits=1)[0] == pytest.approx(1, rel=1e-9)
    with pytest.raises(ValueError, match='logits'): M.inception_score(torch.ones(5, 10), splits=10)

def test_missing_weights_file_is_an_error_not_a_switch(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        M.load_extractor('auto', inception_weights=str(tmp_path / 'nope.pth'))
    monkeypatch.setenv(M.INCEPTION_ENV, str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=M.INCEPTION_ENV): M.load_extractor()
    with pytest.raises(SystemExit, match='Inception weights file'):
        main_eval(['--checkpoint', str(_teacher(tmp_path)), '--num-samples', '8'])

def test_sferd_eval_names_the_extractor_everywhere(tmp_path, capsys):
    t = _teacher(tmp_path)
    rows = main_eval(['--checkpoint', str(t), '--steps', '1,2', '--num-samples', '20', '--seeds', '0,1', '--score-degenerate',
                        '--denoise-images', '8', '--batch-size', '10', '--ref-split', 'test', '--out', str(tmp_path / 'ev')])
    name = M.load_extractor('standin').name
    out = capsys.readouterr().out
    assert [r['steps'] for r in rows] == [1, 2] and [r['nfe'] for r in rows] == [1, 3]
    saved = json.loads((tmp_path / 'ev' / 'eval.json').read_text())['rows']
    for r in rows + saved:
        assert r['extractor'] == name and len(r['fid']) == 2 and r['fid_min'] <= r['fid_mean'] + 1e-12
        assert len(r['denoising_l2']) == 4 and r['denoising_l2_mean'] > 0
    assert out.count(name) >= 3                                            # header + one line per step count
    assert (tmp_path / 'ev' / 'samples_1steps.png').exists() and (tmp_path / 'ev' / 'samples_2steps.png').exists()

def test_sferd_eval_class_conditional_model_gets_the_test_labels(tmp_path):
    "The denoising l2 of a class-conditional model is conditioned on the real test images' classes (it used to pass none)."
    torch.manual_seed(0)
    net = build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,), num_classes=10)
    t = export_denoiser(Denoiser(net, get_schedule('edm'), parameterization='edm'), tmp_path / 'teacher', config=dict(data='cifar10-subset'))
    r = main_eval(['--checkpoint', str(t), '--steps', '1', '--num-samples', '8', '--seeds', '0', '--denoise-images', '6', '--score-degenerate',
                   '--ref-split', 'test', '--out', str(tmp_path / 'ev')])[0]
    from sferd_nb.io import load_denoiser
    test = get_dataset('cifar10-subset', split='test', flip=False)
    den = load_denoiser(t)
    expect = M.denoising_l2(den, to_model_range(test.images[:6]), list(map(float, r['denoising_l2'])), cond=test.labels[:6])
    assert torch.allclose(torch.tensor(list(r['denoising_l2'].values())), expect, atol=1e-6)
    with pytest.raises(ValueError, match='class-conditional'): M.denoising_ability(den, None, test.images[:6])

def test_quick_demo_end_to_end(tmp_path):
    from sferd_nb import demo
    t0 = time.time()
    rows = main_demo(['--quick', '--teacher', str(_teacher(tmp_path)), '--out', str(tmp_path / 'demo'), '--no-progress'])
    assert time.time() - t0 < 120
    assert [r['name'] for r in rows] == ['teacher', 'pd', 'pd+ag', 'cd', 'cd+ag']
    assert len({r['budget_steps'] for r in rows[1:]}) == 1                 # equal budgets
    report = (tmp_path / 'demo' / 'report.md').read_text()
    assert rows[0]['extractor'] in report and 'PD + attention guidance' in report
    assert all((tmp_path / 'demo' / r['grid']).exists() for r in rows)
    res = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert all(r['extractor'] == rows[0]['extractor'] for r in res['rows'])
