"""Train the stand-in FID/IS feature extractor: a small CIFAR-10 CNN on the embedded subset (CPU, minutes).

    OMP_NUM_THREADS=2 .venv/bin/python tools/train_classifier.py --out data/classifier

Writes model.safetensors, config.json (architecture + test accuracy + the command) and README.md.
The architecture is `sferd_nb.metrics.StandInClassifier`; the config is what `load_classifier` reads.
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/classifier')
    p.add_argument('--epochs', type=int, default=24)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--width', type=int, default=32)
    p.add_argument('--feat-dim', type=int, default=256)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--readme-only', action='store_true', help='only (re)write README.md from an existing config.json')
    a = p.parse_args(argv)
    if a.readme_only: return write_readme(Path(a.out), json.loads((Path(a.out) / 'config.json').read_text()))
    from sferd_nb.data import load_cifar10_subset, to_model_range
    from sferd_nb.metrics import StandInClassifier
    torch.manual_seed(a.seed)
    d = load_cifar10_subset()
    xtr, ytr = to_model_range(torch.as_tensor(d['x_train'])), torch.as_tensor(d['y_train'])
    xte, yte = to_model_range(torch.as_tensor(d['x_test'])), torch.as_tensor(d['y_test'])
    net = StandInClassifier(width=a.width, feat_dim=a.feat_dim)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=5e-4)
    steps = a.epochs * (len(xtr) // a.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.2)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    def evaluate():
        net.eval()
        with torch.no_grad(): pred = torch.cat([net(xte[i:i + 256]).argmax(1) for i in range(0, len(xte), 256)])
        net.train(); return (pred == yte).float().mean().item()
    for ep in range(a.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        tot = 0.
        for i in range(len(xtr) // a.batch_size):
            idx = perm[i * a.batch_size:(i + 1) * a.batch_size]
            x, y = xtr[idx], ytr[idx]
            flip = torch.rand(len(x), generator=g) < 0.5                        # augment: flips + 4px shifted crops
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = F.pad(x, (4, 4, 4, 4), mode='reflect')
            dx, dy = torch.randint(0, 9, (2,), generator=g).tolist()
            x = x[..., dy:dy + 32, dx:dx + 32]
            loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); tot += loss.item()
        print(f"epoch {ep + 1}/{a.epochs} loss {tot / (i + 1):.3f} test acc {evaluate():.4f} ({time.time() - t0:.0f}s)", flush=True)
    acc = evaluate()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / 'model.safetensors'))
    cmd = 'OMP_NUM_THREADS=2 .venv/bin/python tools/train_classifier.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    cfg = dict(arch='StandInClassifier', width=a.width, feat_dim=a.feat_dim, num_classes=10,
               params=sum(p.numel() for p in net.parameters()), train_data='cifar10-subset[train] (5085 images)',
               test_data='cifar10-subset[test] (1017 images)', test_accuracy=round(acc, 4), epochs=a.epochs,
               batch_size=a.batch_size, lr=a.lr, seed=a.seed, train_seconds=round(time.time() - t0),
               command=cmd.strip(), torch=torch.__version__)
    (out / 'config.json').write_text(json.dumps(cfg, indent=1))
    write_readme(out, cfg)
    print(json.dumps(cfg))

def write_readme(out: Path, cfg: dict) -> Path:
    "The model card of the stand-in extractor."
    txt = f"""# data/classifier — the stand-in FID / IS feature extractor

A small CIFAR-10 CNN (`sferd_nb.metrics.StandInClassifier`, width {cfg['width']}, {cfg['feat_dim']}-d penultimate
features, {cfg['params']:,} parameters) trained by the project on the embedded subset's training split
({cfg['train_data']}). `sferd_nb.metrics` uses it in place of Inception-v3 when the Inception weights
(`pt_inception-2015-12-05`) are not available: its penultimate ReLU features are the FID features and its softmax the
Inception-Score classes (IS is out of 10). Every number computed with it is labelled
`standin-cifar10-cnn (...)`: such numbers compare methods with each other on this machine and are **not**
comparable with published FID / IS.

| | |
|---|---|
| test accuracy | **{100 * cfg['test_accuracy']:.2f}%** on {cfg['test_data']} |
| training | {cfg['epochs']} epochs, batch {cfg['batch_size']}, AdamW (wd 5e-4), one-cycle lr {cfg['lr']}, label smoothing 0.1, flips + 4px shifts, seed {cfg['seed']} |
| time | {cfg['train_seconds']} s on CPU (torch {cfg['torch']}) |
| files | `model.safetensors` (weights), `config.json` (architecture, accuracy, command) |

Exact training command (from the repository root):

```
{cfg['command']}
```
"""
    (out / 'README.md').write_text(txt)
    return out / 'README.md'

if __name__ == '__main__': main()
