"Bad input and distributed sharding for sferd_nb.data (issue 2)."
import os, pickle, subprocess, sys, zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import launch_gloo
from sferd_nb import data as D

RNG = np.random.default_rng(0)

def _cifar_dir(tmp_path, n=4):
    folder = tmp_path / 'cifar-10-batches-py'; folder.mkdir()
    for name in D.CIFAR10_FILES:
        D.write_cifar_batch(folder / name, RNG.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), RNG.integers(0, 10, n))
    return folder

# ---------------------------------------------------------------- CIFAR-10
def test_missing_cifar_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match='download=True'):
        D.load_cifar10(tmp_path / 'nope')

def test_missing_cifar_batch_file(tmp_path):
    folder = _cifar_dir(tmp_path); (folder / 'data_batch_3').unlink()
    with pytest.raises(FileNotFoundError, match='data_batch_3'):
        D.load_cifar10(tmp_path)

def test_empty_cifar_directory_offline(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='data_batch_1'):
        D.load_cifar10(tmp_path / 'empty')

def test_cifar_download_offline_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='put the official'):
        D.download_cifar10(tmp_path, url='http://127.0.0.1:9/cifar-10-python.tar.gz')
    assert not (tmp_path / 'cifar-10-batches-py').exists()        # nothing half-written left behind
    assert list(tmp_path.iterdir()) == []

def test_cifar_wrong_shape(tmp_path):
    folder = _cifar_dir(tmp_path)
    with open(folder / 'data_batch_1', 'wb') as f:
        pickle.dump({b'data': np.zeros((4, 100), np.uint8), b'labels': [0] * 4}, f)
    with pytest.raises(ValueError, match=r'data_batch_1.*\(N, 3072\)'):
        D.load_cifar10(folder)

def test_cifar_wrong_dtype(tmp_path):
    folder = _cifar_dir(tmp_path)
    with open(folder / 'test_batch', 'wb') as f:
        pickle.dump({b'data': np.zeros((4, 3072), np.float32), b'labels': [0] * 4}, f)
    with pytest.raises(ValueError, match='test_batch.*uint8'):
        D.load_cifar10(folder)

def test_cifar_labels_out_of_range(tmp_path):
    folder = _cifar_dir(tmp_path)
    D.write_cifar_batch(folder / 'data_batch_2', np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 10, 2])
    with pytest.raises(ValueError, match=r'data_batch_2.*\[0, 9\]'):
        D.load_cifar10(folder)

def test_cifar_corrupt_file(tmp_path):
    folder = _cifar_dir(tmp_path)
    (folder / 'data_batch_4').write_bytes(b'\x80\x02garbage')
    with pytest.raises(ValueError, match='data_batch_4.*not a readable'):
        D.load_cifar10(folder)

def test_cifar_refuses_code_in_pickle(tmp_path):
    folder = _cifar_dir(tmp_path)
    class Evil:
        def __reduce__(self): return (os.system, ('echo pwned',))
    with open(folder / 'data_batch_5', 'wb') as f: pickle.dump({b'data': Evil(), b'labels': []}, f)
    with pytest.raises(ValueError, match='refusing'):
        D.load_cifar10(folder)

# ---------------------------------------------------------------- subset
def test_subset_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='SFERD_NB_DATA'):
        D.load_cifar10_subset(tmp_path / 'cifar10_subset.npz')

def test_subset_corrupt_and_truncated(tmp_path):
    good = (D.data_dir() / D.SUBSET_FILE).read_bytes()
    bad = tmp_path / 'cifar10_subset.npz'
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(ValueError, match='corrupt or truncated'):
        D.load_cifar10_subset(bad)
    bad.write_bytes(b'not a zip at all')
    with pytest.raises(ValueError, match='corrupt or truncated'):
        D.load_cifar10_subset(bad)

def test_subset_missing_key_and_wrong_shape(tmp_path):
    p = tmp_path / 's.npz'
    np.savez(p, x_train=np.zeros((2, 3, 32, 32), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match='missing arrays'):
        D.load_cifar10_subset(p)
    np.savez(p, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2, np.int64),
             x_test=np.zeros((2, 3, 32, 32), np.uint8), y_test=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r'shape \(N, 3, 32, 32\)'):
        D.load_cifar10_subset(p)

def test_env_var_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_NB_DATA', str(tmp_path))
    assert D.data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        D.get_dataset('cifar10-subset')

# ---------------------------------------------------------------- ImageNet 64
def test_imagenet_missing_dir_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='ImageNet 64x64 directory not found'):
        D.load_imagenet64(tmp_path / 'nope')
    (tmp_path / 'in64').mkdir()
    D.write_imagenet64_npz(tmp_path / 'in64' / 'train_data_batch_1.npz', np.zeros((2, 3, 64, 64), np.uint8), [0, 1])
    with pytest.raises(FileNotFoundError, match='train_data_batch_2'):
        D.load_imagenet64(tmp_path / 'in64', 'train')
    x, y = D.load_imagenet64(tmp_path / 'in64', 'train', max_files=1)
    assert x.shape == (2, 3, 64, 64) and y.tolist() == [0, 1]

def test_imagenet_bad_arrays(tmp_path):
    p = tmp_path / 'val_data.npz'
    np.savez(p, data=np.zeros((2, 3 * 32 * 32), np.uint8), labels=np.array([1, 2]))
    with pytest.raises(ValueError, match=r'val_data.*\(N, 12288\)'):
        D.load_imagenet64(tmp_path, 'val')
    np.savez(p, data=np.zeros((2, 12288), np.uint8), labels=np.array([0, 2]))       # 0-based: not official
    with pytest.raises(ValueError, match='1..1000'):
        D.load_imagenet64(tmp_path, 'val')
    np.savez(p, data=np.zeros((2, 12288), np.uint8), labels=np.array([1, 1001]))
    with pytest.raises(ValueError, match=r'\[0, 999\]'):
        D.load_imagenet64(tmp_path, 'val')
    np.savez(p, data=np.zeros((2, 12288), np.int16), labels=np.array([1, 2]))
    with pytest.raises(ValueError, match='uint8'):
        D.load_imagenet64(tmp_path, 'val')
    p.write_bytes(b'PK\x03\x04 truncated')
    with pytest.raises(ValueError, match='corrupt or truncated'):
        D.load_imagenet64(tmp_path, 'val')

# ---------------------------------------------------------------- ImageNet 64: the memory-mapped copy
def _in64(root, sizes=(3, 4, 3, 4, 3, 4, 3, 4, 3, 4)):
    root.mkdir(parents=True, exist_ok=True)
    for name, n in zip(D.IMAGENET64_TRAIN_FILES, sizes):
        D.write_imagenet64_npz(root / f'{name}.npz', RNG.integers(0, 256, (n, 3, 64, 64), dtype=np.uint8), RNG.integers(0, 1000, n))
    D.write_imagenet64_npz(root / 'val_data.npz', RNG.integers(0, 256, (5, 3, 64, 64), dtype=np.uint8), RNG.integers(0, 1000, 5))
    return root

@pytest.mark.skipif(not Path('/proc/self/maps').exists(), reason='needs Linux /proc')
def test_imagenet64_dataset_is_memory_mapped_not_copied(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    ds = D.get_dataset(f'imagenet64:{_in64(tmp_path / "in64")}', split='train')
    cached = next((tmp_path / 'cache' / 'imagenet64').glob('train-*.images.npy'))
    assert str(cached) in Path('/proc/self/maps').read_text()             # the images are pages of the cache file
    x, y = D.load_imagenet64(tmp_path / 'in64', 'train')
    assert torch.equal(ds.images, x) and torch.equal(ds.labels, y)

def test_imagenet64_cache_without_space_or_write_access_is_one_clear_error(tmp_path, monkeypatch):
    root = _in64(tmp_path / 'in64')
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(D.shutil, 'disk_usage', lambda p: type('U', (), dict(free=1000))())
    with pytest.raises(ValueError, match='needs 0.00 GiB but .* has 0.00 GiB free; set SFERD_CACHE'):
        D.imagenet64_memmap(root, split='train', progress=False)
    assert not list((tmp_path / 'cache').rglob('*.npy')) and not list((tmp_path / 'cache').rglob('*.tmp'))
    monkeypatch.undo()
    (tmp_path / 'afile').write_text('x')
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'data', '--data', f'imagenet64:{root}', '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, env={**os.environ, 'SFERD_CACHE': str(tmp_path / 'afile' / 'cache')})
    assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('sferd-data: error: could not create the cache folder') and 'set SFERD_CACHE' in last, r.stderr

_RANK = r'''
import hashlib, sys, time
from sferd_nb.data import imagenet64_memmap
x, y, _ = imagenet64_memmap(sys.argv[1], split='train', progress=True, wait_s=float(sys.argv[2]))
print(hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest())
'''

def test_imagenet64_cache_is_built_once_by_whichever_process_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    root = _in64(tmp_path / 'in64', sizes=(300,) * 10)                    # 36 MB: the conversion takes a moment
    env = {**os.environ, 'SFERD_CACHE': str(tmp_path / 'cache')}
    procs = [subprocess.Popen([sys.executable, '-c', _RANK, str(root), '120'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**env, 'LOCAL_RANK': r}) for r in ('0', '1', '2')]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    x, y = D.load_imagenet64(root, 'train')
    want = __import__('hashlib').sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    assert [o[0].strip() for o in outs] == [want] * 3
    assert sum(o[1].count('converting ImageNet 64x64') for o in outs) == 1, [o[1] for o in outs]   # one builder
    assert len(list((tmp_path / 'cache' / 'imagenet64').glob('*.npy'))) == 2                     # one copy: images + labels
    copy = _in64(tmp_path / 'elsewhere', sizes=(300,) * 10)                # other bytes: its own copy, the first one kept
    D.imagenet64_memmap(copy, split='train', progress=False)
    assert len(list((tmp_path / 'cache' / 'imagenet64').glob('*.npy'))) == 4


def test_imagenet64_cache_wait_for_a_builder_is_bounded(tmp_path):
    import fcntl
    root = _in64(tmp_path / 'in64')
    folder = tmp_path / 'cache' / 'imagenet64'; folder.mkdir(parents=True)
    lock = folder / f"train-{D._content_key(D._imagenet64_files(root, 'train'))}.lock"
    with open(lock, 'a') as fh:                                           # another process is building (we hold its lock)
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = subprocess.run([sys.executable, '-c', _RANK, str(root), '1'], capture_output=True, text=True,
                           env={**os.environ, 'SFERD_CACHE': str(tmp_path / 'cache')})
    assert r.returncode != 0 and 'another process is building' in r.stderr, r.stderr


def test_memory_mapped_dataset_reaches_spawned_loader_workers_as_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv('SFERD_CACHE', str(tmp_path / 'cache'))
    ds = D.get_dataset(f'imagenet64:{_in64(tmp_path / "in64")}', split='train', flip=False)
    import pickle as pk
    assert len(pk.dumps(ds)) < 10_000 < ds.images.numel()                  # the path, not the pixels
    dl = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=1, multiprocessing_context='spawn')
    xb, yb = next(iter(dl))
    assert torch.equal(xb, D.to_model_range(ds.images[:5])) and torch.equal(yb, ds.labels[:5])
    loader = D.make_loader(ds, 4, seed=3, flip=True)                      # the loader's seed/flip, not written into ds
    assert (ds.seed, ds.flip) == (0, False) and (loader.dataset.seed, loader.dataset.flip) == (3, True)

def test_bad_specs_and_arguments():
    for spec in ('mnist', 'cifar10', 'imagenet64', 'cifar10-subset:x'):
        with pytest.raises(ValueError, match='unknown data spec'):
            D.get_dataset(spec)
    with pytest.raises(ValueError, match='split'):
        D.get_dataset('cifar10-subset', split='val')
    ds = D.get_dataset('cifar10-subset', split='test')
    with pytest.raises(ValueError, match='batch_size'):
        D.make_loader(ds, 0)
    with pytest.raises(ValueError, match='lower the batch size'):
        D.make_loader(ds, 5000)
    with pytest.raises(ValueError, match='uint8'):
        D.ImageDataset(torch.zeros(2, 3, 8, 8))

def test_cli_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'data', '--data', f'cifar10:{tmp_path}/none', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().count('\n') == 0 and 'sferd-data: error:' in r.stderr, r.stderr

# ---------------------------------------------------------------- DDP sharding
_WORKER = r'''
import os, sys, json, torch, torch.distributed as dist
from sferd_nb.data import ImageDataset, make_loader, infinite_batches
from sferd_nb.train import cleanup_distributed
dist.init_process_group('gloo')
n = 64
img = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
img[:, 0, 0, 0] = torch.arange(n)                       # the index is written into a pixel
ds = ImageDataset(img, labels=torch.arange(n) % 10, num_classes=10, flip=False)
dl = make_loader(ds, batch_size=4, seed=1)
seen = []
it = infinite_batches(dl)
for _ in range(len(dl)):
    x, y = next(it); seen += ((x[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
out = [None] * dist.get_world_size(); dist.all_gather_object(out, seen)
if dist.get_rank() == 0: print(json.dumps(out))
cleanup_distributed()                         # barrier, pause, destroy: no hang at exit with torch 2.3
'''

def test_loader_shards_without_overlap_under_gloo(tmp_path):
    script = tmp_path / 'w.py'; script.write_text(_WORKER)
    outs = launch_gloo(script, timeout=120)
    import json
    a, b = json.loads(outs[0].strip().splitlines()[-1])
    assert len(a) == len(b) == 32
    assert not set(a) & set(b)                              # disjoint shards
    assert sorted(a + b) == list(range(64))                 # that together cover the data once


def test_labels_without_a_number_of_classes_say_what_is_missing():
    from sferd_nb.data import ImageDataset
    with pytest.raises(ValueError, match='labels need num_classes='):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels=torch.tensor([0, 1]))
    assert len(ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels=torch.tensor([0, 1]), num_classes=2)) == 2
