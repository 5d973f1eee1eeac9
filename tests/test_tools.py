"Developer tools: the course-run runner (tools/run_slow.py)."
import json, subprocess, sys
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
# the tools run on nbdev (a dev dependency: `make install` has it; a bare GPU image may not)
pytest.importorskip('nbdev', reason='the developer tools need the dev extras: pip install -e .[dev]')


from conftest import write_nb as _nb


def test_run_slow_runs_slow_cells_skips_eval_false_and_saves_figures(tmp_path):
    nb = _nb(tmp_path / '99_x.ipynb', [
        "#| default_exp x", "budget = 1", "#| slow\nbudget = 7",
        "#| eval: false\nraise RuntimeError('must not run')",
        "import matplotlib.pyplot as plt\nplt.plot([0, budget])\nbudget * 6"])
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(nb), '--figs', str(tmp_path / 'f')],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '\n42\n' in out.stdout                      # the slow cell ran; the last expression is shown
    assert 'must not run' not in out.stdout + out.stderr
    assert len(list((tmp_path / 'f').glob('*.png'))) == 1


def test_run_slow_only_selects_slow_cells_by_text(tmp_path):
    nb = _nb(tmp_path / '98_x.ipynb', ["n = 1", "#| slow\nn += 10  # first", "#| slow\nn += 100  # second", "n"])
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(nb), '--figs', str(tmp_path / 'f'),
                          '--only', 'second'], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '\n101\n' in out.stdout                     # default cells and the selected slow cell only


def test_run_slow_cells_can_pickle_their_classes(tmp_path):
    nb = _nb(tmp_path / '97_x.ipynb', ["import pickle\nclass Box:\n    v = 3", "len(pickle.dumps(Box())) > 0"])
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(nb), '--figs', str(tmp_path / 'f')],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '\nTrue\n' in out.stdout


def test_run_slow_missing_notebook_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_slow.py'), str(tmp_path / 'nope.ipynb')],
                         capture_output=True, text=True)
    assert out.returncode != 0 and 'no notebook' in out.stderr


def test_make_docs_executes_a_notebook_and_renders_its_outputs(tmp_path, monkeypatch):
    md = load_script('tools/make_docs.py')
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    nb = _nb(tmp_path / '98_y.ipynb', [
        "#| hide\nsecret = 'hidden'", "x = 20", "#| slow\nx = 1000",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1]); plt.show()", "print('answer', x + 22)"])
    out = md.render(nb, tmp_path / 'site', run=True)
    page = out.read_text()
    assert 'answer 42' in page and 'secret' not in page and '#|' not in page
    assert (tmp_path / 'site' / '98_y_files' / 'fig1.png').exists() and '98_y_files/fig1.png' in page
    assert 'answer 42' not in md.render(nb, tmp_path / 'site2').read_text()      # without --execute: stored outputs only


def test_make_docs_lists_a_result_file_under_the_slow_cell_that_names_it(tmp_path):
    "A committed result goes into the callout of the course-run cell that writes it (names it), not of the last one."
    md = load_script('tools/make_docs.py')
    (tmp_path / 'results').mkdir()
    for n in ('97_first.json', '97_second.json'): (tmp_path / 'results' / n).write_text('{"fid": 1.5}')
    nb = _nb(tmp_path / '97_z.ipynb', ["#| slow\nsave('97_first.json')", ('md', 'between'), "#| slow\nsave('97_second.json')"])
    page = md.render(nb, tmp_path / 'site').read_text()
    first, second = page.index("save('97_first.json')"), page.index("save('97_second.json')")
    assert first < page.index('`97_first.json`') < second < page.index('`97_second.json`'), page
    # a figure written beside a named file (same stem + '_...') goes to that cell too, even when the prose shows it after a
    # later slow cell; a JSON whose stem merely extends a named one does not
    (tmp_path / 'images').mkdir(); (tmp_path / 'images' / '97_first_samples.png').write_bytes(b'png')
    (tmp_path / 'results' / '97_first_real.json').write_text('{"fid": 2.5}')
    nb = _nb(tmp_path / '97_z.ipynb', ["#| slow\nsave('97_first.json')", "#| slow\nsave('97_second.json')",
                                       ('md', '![samples](images/97_first_samples.png)'), "#| slow\nsave(f'97_{name}.json')"])
    page = md.render(nb, tmp_path / 'site').read_text()
    cells = [page.index(c) for c in ("save('97_first.json')", "save('97_second.json')", "save(f'97_{name}.json')")]
    assert cells[0] < page.index('`97_first_samples.png`') < cells[1], page
    assert cells[2] < page.index('`97_first_real.json`'), page          # named by no cell: the last slow cell, not the first


def test_api_reference_shows_every_trainer_method_and_the_docments():
    """Trainer combines its parts (one small class per notebook cell) by inheritance: the API page lists their methods
    under Trainer (mkdocstrings' inherited_members), and parameters documented nbdev's way (a comment after each one)
    become the Args table."""
    griffe = pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    import yaml
    ext = griffe.load_extensions(f"{ROOT / 'tools' / 'docs_griffe.py'}:Docments")
    mod = griffe.load('sferd_nb.train', search_paths=[str(ROOT)], extensions=ext)
    members = mod['Trainer'].all_members
    assert {'fit', 'train_step', 'backward', 'update_ema', 'after_step', 'resume', 'save', 'ckpt_path'} <= set(members)
    assert members['fit'].path == 'sferd_nb.train.Trainer.fit'
    opts = [p for p in yaml.safe_load((ROOT / 'mkdocs.yml').read_text())['plugins'] if isinstance(p, dict) and 'mkdocstrings' in p]
    assert opts[0]['mkdocstrings']['handlers']['python']['options']['inherited_members'] is True
    sections = members['__init__'].docstring.parse('google')
    params = {p.name: p.description for s in sections if s.kind.value == 'parameters' for p in s.value}
    assert list(params) == ['model', 'loss_fn', 'config', 'out_dir', 'sample_fn', 'meta', 'extra', 'on_step_end', 'param_groups']
    assert params['param_groups'].endswith('[[from_step, scale], ...]')                  # the continuation line joins
    sections = mod['teacher_loss'].docstring.parse('google')
    assert sections[0].kind.value == 'text' and [s.kind.value for s in sections][1] == 'parameters'   # summary kept
    fields = {k: v.docstring.value for k, v in mod['TrainConfig'].members.items() if v.is_attribute and v.docstring}
    assert len(fields) == 23 and fields['ema_rampup'].startswith('half-life <= ema_rampup')        # every knob, from its comment
    gdd = griffe.load('sferd_nb.gdd', search_paths=[str(ROOT)], extensions=ext)
    docs = {k: v.docstring for k, v in gdd['GDDSettings'].members.items() if v.is_attribute}
    assert docs['r1_every'].value == 'lazy R1 interval in steps' and 'resnet 0.01' in docs['gamma'].value   # setting()'s help
    smp = griffe.load('sferd_nb.samplers', search_paths=[str(ROOT)], extensions=ext, docstring_parser='google')   # as mkdocstrings
    fwd = smp['GaussianDenoiser'].all_members['forward']                  # docments and no docstring: the loader's parser
    assert [s.kind.value for s in fwd.docstring.parsed] == ['parameters'], fwd.docstring.value
    assert [p.name for p in fwd.docstring.parsed[0].value] == ['x_t', 't', 'cond', 'return_attn']


def test_field_doc_reads_a_settings_help_or_the_comment_of_the_line():
    pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    dg = load_script('tools/docs_griffe.py')
    assert dg.field_doc("lr: float = 2e-4        # peak learning rate") == 'peak learning rate'
    assert dg.field_doc("max_steps: int = setting(1000, 'optimiser steps per stage', **at_least_1)  # not this") == 'optimiser steps per stage'
    assert dg.field_doc("x: int = 0") is None and dg.field_doc("gamma: float = setting(None, f'{R1} weight')") is None


def test_docments_parser_reads_the_comment_of_each_parameter():
    pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    dg = load_script('tools/docs_griffe.py')
    src = ("@torch.no_grad()\n"
           "def f(den,  # the denoiser\n"
           "      x: Tensor = torch.zeros(2, 3),   # a tensor (a, b)\n"
           "      *, seed: int = 0, g=None,  # the generator\n"
           "                                 #   continued\n"
           "      last=(1, 2)) -> Tensor:  # the last one\n"
           "    y = 1  # not a parameter\n")
    assert dg.docments(src) == {'den': 'the denoiser', 'x': 'a tensor (a, b)', 'g': 'the generator continued',
                                'last': 'the last one'}
    assert dg.docments('def f(a, b):\n    pass  # no docments\n') == {}


def _badges(): return load_script('tools/colab_badges.py')


def test_colab_badges_adds_a_badge_once_and_check_mode_reports_it(tmp_path):
    cb, script = _badges(), [sys.executable, str(ROOT / 'tools' / 'colab_badges.py')]
    nb = _nb(tmp_path / '42_z.ipynb', ['#| default_exp z', 'x = 1'])
    run = lambda *a: subprocess.run(script + [*a, str(nb)], capture_output=True, text=True)
    assert run('--check').returncode == 1                        # no badge yet; --check changes nothing
    assert len(json.loads(nb.read_text())['cells']) == 2
    assert run().returncode == 0 and run().returncode == 0       # twice: idempotent
    cells = json.loads(nb.read_text())['cells']
    assert len(cells) == 4 and cells[0]['cell_type'] == 'markdown' and isinstance(cells[0]['source'], list)
    text = ''.join(cells[0]['source'])
    cfg = cb.settings()
    assert f"colab.research.google.com/github/{cfg['user']}/{cfg['repo']}/blob/main/nbs/42_z.ipynb" in text
    assert 'pip install' in text
    code = ''.join(cells[1]['source'])                           # the install cell: plain Python, runs where the package is
    assert cells[1]['cell_type'] == 'code' and code.startswith(cb.INSTALL_MARK) and 'fastcore' in code
    compile(code, 'install', 'exec'); exec(code, {})             # here the import succeeds and nothing is installed
    assert run('--check').returncode == 0
    cells[0]['source'] = ['[Open in Colab](https://colab.research.google.com/github/old/old/blob/main/nbs/x.ipynb)']
    nb.write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=cells)))
    assert run('--check').returncode == 1 and run().returncode == 0      # a stale badge is replaced, not added to
    assert len(json.loads(nb.read_text())['cells']) == 4 and run('--check').returncode == 0
    idx = _nb(tmp_path / 'index.ipynb', ['x = 1'])                    # the README's notebook: a badge, no code cell
    assert subprocess.run(script + [str(idx)]).returncode == 0 and len(json.loads(idx.read_text())['cells']) == 2


# notebooks left without the Colab badge (none: every notebook carries it; tools/colab_badges.py adds or refreshes it)
BADGE_EXCLUDED = set()


def test_course_notebooks_have_their_colab_badge():
    nbs = [str(p) for p in sorted((ROOT / 'nbs').glob('*.ipynb')) if p.stem not in BADGE_EXCLUDED]
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'colab_badges.py'), '--check', *nbs], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_make_docs_serves_the_colab_badge_from_the_site(tmp_path):
    md = load_script('tools/make_docs.py')
    nb = _nb(tmp_path / '97_w.ipynb', ['x = 1'])
    d = json.loads(nb.read_text()); _badges().apply(d, nb.name, md.settings()); nb.write_text(json.dumps(d))
    page = md.render(nb, tmp_path / 'site').read_text()
    assert '](assets/colab-badge.svg)' in page and 'colab.research.google.com/github/' in page
    assert (ROOT / 'docs' / 'assets' / 'colab-badge.svg').exists()


def test_make_docs_lists_every_notebook_that_exports_a_module(tmp_path):
    "A lesson continued in an NNb_ notebook (`#| export name`) is listed beside the notebook that makes the module (`#| default_exp`)."
    md = load_script('tools/make_docs.py')
    nbs = [_nb(tmp_path / '41_a.ipynb', ['#| default_exp x', '#| export\nA = 1']),
           _nb(tmp_path / '41b_b.ipynb', ['#| export x\nB = 2', '#| export x\nC = 3', ('md', 'prose about `#| export y`')]),
           _nb(tmp_path / '42_c.ipynb', ['#| default_exp y', '#| exporti\nD = 4'])]
    assert md.module_notebooks(nbs) == {'x': ['41_a', '41b_b'], 'y': ['42_c']}
    pages = tmp_path / 'pages'; md.write_api(pages, ['sferd_nb.x', 'sferd_nb.y'], md.module_notebooks(nbs), root=tmp_path)
    assert 'Exported from the notebooks [41_a](../41_a.md), [41b_b](../41b_b.md).' in (pages / 'api' / 'x.md').read_text()
    assert 'Exported from the notebook [42_c](../42_c.md).' in (pages / 'api' / 'y.md').read_text()


def test_make_docs_folds_code_fold_cells_and_shows_their_outputs(tmp_path):
    md = load_script('tools/make_docs.py')
    nb = _nb(tmp_path / '96_v.ipynb', ["#| code-fold: true\n#| code-summary: tests of q_sample\nn = 40\nprint('mean', n + 2)",
                                        "print('plain')"])
    page = md.render(nb, tmp_path / 'site', run=True).read_text()
    assert '??? note "tests of q_sample"\n\n    ```python\n    n = 40' in page and '#|' not in page
    assert page.index('mean 42') > page.index('??? note') and '\n```text\nmean 42\n```' in page     # output outside the fold


def test_sgp_real_fid_finds_notebook_08bs_helpers():
    "benchmarks/sgp_real_fid.py re-makes notebook 08b's students with the notebook's own helper: the cell it reads must define it."
    mod = load_script('benchmarks/sgp_real_fid.py')
    ns = mod.notebook_helpers()
    assert all(callable(ns[k]) for k in ('sgp_comparison', 'summarize_sgp', 'fitting_error_per_t'))
    # every global name the cell reads is in the namespace it runs in (a missing one fails only deep inside a 15-minute run)
    import ast, builtins
    src = next(''.join(c['source']) for c in json.loads((ROOT / 'nbs' / '08b_sgp.ipynb').read_text())['cells']
               if c['cell_type'] == 'code' and 'def sgp_comparison' in ''.join(c['source']))
    tree, bound = ast.parse(src), set(dir(builtins)) | set(ns)
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)): bound.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store): bound.add(n.id)
        elif isinstance(n, ast.arg): bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)): bound |= {(a.asname or a.name).split('.')[0] for a in n.names}
    assert {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} <= bound


def test_gpu_check_script_parses_and_skips(tmp_path):
    "benchmarks/gpu_check.sh (the GPU session's one script) is valid bash, and its step helper honours SKIP and the deadline."
    sh = ROOT / 'benchmarks' / 'gpu_check.sh'
    assert subprocess.run(['bash', '-n', str(sh)]).returncode == 0
    src = sh.read_text()
    helper = src[src.index('left() {'):src.index('{ nvidia-smi')]                 # the functions only
    out = subprocess.run(['bash', '-c', f'set -u; OUT=$1; DEADLINE=100; SKIP="b"; T0=$(date +%s); mkdir -p $OUT\n{helper}\n'
                          'step a 30 true; step b 30 true; DEADLINE=0; step c 30 true; cat $OUT/summary.txt', '_', str(tmp_path / 'out')],
                         capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stderr
    assert any(l.startswith('a rc=0') for l in lines) and 'SKIPPED b (SKIP)' in lines and 'SKIPPED c (deadline)' in lines, lines


def test_fullsize_smoke_script_end_to_end(tmp_path):
    "benchmarks/fullsize_smoke.py (the full-size recipes' smoke run) at the `tiny` config: distil, export, sferd-eval, smoke.json."
    cmd = [sys.executable, str(ROOT / 'benchmarks' / 'fullsize_smoke.py'), '--config', 'tiny', '--methods', 'sferd-cd',
           '--steps', '1', '--batch', '2', '--eval-samples', '4', '--out', str(tmp_path)]
    env = dict(__import__('os').environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg',
               PATH=f"{Path(sys.executable).parent}:{__import__('os').environ.get('PATH', '')}")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    r = json.loads((tmp_path / 'tiny' / 'smoke.json').read_text())['methods']['sferd-cd']
    assert r['rc'] == 0 and r['eval_rc'] == 0 and [s['stage'] for s in r['stages']] == ['sferd-cd', 'sgp']
    assert r['eval']['rows'][0]['fid_mean'] > 0 and '| sferd-cd | 0 |' in out.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)   # never overwrites a finished run
    assert again.returncode != 0 and 'is not empty' in again.stderr


def test_fullsize_smoke_standin_imagenet64_is_the_official_format(tmp_path):
    "The stand-in ImageNet-64 of the smoke runs is read by the library's own loader: 64 px uint8, labels 0..9 of 1000."
    mod = load_script('benchmarks/fullsize_smoke.py')
    from sferd_nb.data import get_dataset
    spec_str = mod.standin_imagenet64(tmp_path / 'in64')
    assert spec_str == f'imagenet64:{tmp_path / "in64"}' and len(list((tmp_path / 'in64').glob('*.npz'))) == 11
    tr, te = get_dataset(spec_str, split='train'), get_dataset(spec_str, split='test')
    sub = get_dataset('cifar10-subset', split='train')
    assert tr.images.shape == (len(sub), 3, 64, 64) and tr.num_classes == 1000 and len(te) == len(get_dataset('cifar10-subset', split='test'))
    assert int(tr.labels.max()) == 9 and (tr.images[:, :, ::2, ::2] == sub.images).all()
    (tmp_path / 'log').write_text('step 1\nstudents: /a/stage0_1steps, /a/sgp\n')
    assert mod.students(tmp_path / 'log') == [Path('/a/stage0_1steps'), Path('/a/sgp')]


def test_time_estimates_are_the_stated_times_and_are_written_where_missing(tmp_path, capsys):
    """Issue 34, item 6: every lesson's time line is the estimate of tools/time_estimates.py (reading pace + default run).
    By design a prose edit that moves a lesson across a 5-minute step fails here: run `python tools/time_estimates.py --write`."""
    te = load_script('tools/time_estimates.py')
    assert te.main(['--check']) == 0, capsys.readouterr().err
    md = lambda s: dict(cell_type='markdown', source=s, metadata={})
    code = lambda s: dict(cell_type='code', source=s, metadata={}, outputs=[], execution_count=None)
    nb = dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
        md('**What you will learn**\n\n- one thing\n- another\n  on two lines\n\nMore text.'),
        md(' '.join(['word'] * 600)), code('x = 1\n' * 100), code('#| hide\n' + 'y = 2\n' * 500)])
    e = te.estimate(nb, 'lesson')
    assert (e['words'], e['code_lines'], e['minutes']) == (612, 100, 10), e     # 612 / 150 + 100 / 20 = 9.1 -> 10
    (tmp_path / 'lesson.ipynb').write_text(json.dumps(nb))
    assert te.main(['--check', '--nbs', str(tmp_path)]) == 1                     # no time line yet
    assert te.main(['--write', '--nbs', str(tmp_path)]) == 0 and te.main(['--check', '--nbs', str(tmp_path)]) == 0
    first = ''.join(json.loads((tmp_path / 'lesson.ipynb').read_text())['cells'][0]['source'])
    assert first == ('**What you will learn**\n\n- one thing\n- another\n  on two lines\n\n'
                     '*Time: ~10 minutes (reading + default run).*\n\nMore text.'), first
    nb['cells'][0]['source'] = first.replace('~10 minutes', '~5 minutes')           # a stale time line is found and rewritten
    (tmp_path / 'lesson.ipynb').write_text(json.dumps(nb))
    assert te.main(['--check', '--nbs', str(tmp_path)]) == 1
    assert te.main(['--write', '--nbs', str(tmp_path)]) == 0 and te.main(['--check', '--nbs', str(tmp_path)]) == 0
    assert ''.join(json.loads((tmp_path / 'lesson.ipynb').read_text())['cells'][0]['source']) == first
    nb['cells'].append(md('*Time: ~10 minutes (reading + default run).*'))        # two time lines: refused
    (tmp_path / 'lesson.ipynb').write_text(json.dumps(nb))
    assert te.main(['--check', '--nbs', str(tmp_path)]) == 1 and 'time lines; keep one' in capsys.readouterr().err


def _literal(nb: Path, name: str):
    "The literal value assigned to `name` in the code cell of `nb` that assigns it."
    import ast
    src = next(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if f'{name} = ' in ''.join(c['source']))
    return next(ast.literal_eval(n.value) for n in ast.parse(src).body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == name)


def test_the_only_texts_the_notebooks_print_pick_the_slow_cell_that_writes_the_file():
    "The `--only` texts 09 and 12 print when a result file is missing each select exactly one slow cell: the one writing that file."
    sys.path.insert(0, str(ROOT / 'tools'))                              # run_slow imports make_docs from its folder
    try: rs = load_script('tools/run_slow.py')
    finally: sys.path.remove(str(ROOT / 'tools'))
    nb9, nb12 = ROOT / 'nbs' / '09_sferd.ipynb', ROOT / 'nbs' / '12_gdd.ipynb'
    only, files = _literal(nb9, 'HEADLINE_ONLY'), _literal(nb9, 'HEADLINE_FILES')
    pairs = [(nb9, t, f) for k in only for t, f in zip(only[k], files[k])]
    pairs += [(nb12, 'GDD at one step by both networks', '12_gdd_by_both.json')]
    named = [f for fs in _literal(nb9, 'ENHANCEMENT_FILES_AT').values() for f in fs] + list(_literal(nb9, 'CONFOUND_REAL_FILES'))
    pairs += [(nb9, Path(f).stem, f) for f in named]                      # `_missing` prints the file's stem as the --only text
    pairs += [(nb12, Path(f).stem, f) for f in _literal(nb12, 'VARIANT_FILES')]           # 12's variants: the same rule
    pairs += [(nb12, '12_recall_controls', '12_recall_controls.json')]
    for nb, text, file in pairs:
        default = {i for i, _ in rs.cells(nb, only='\0')}                 # no slow cell contains a NUL
        picked = [src for i, src in rs.cells(nb, only=text) if i not in default]
        assert len(picked) == 1 and f"'{file}'" in picked[0], (nb.name, text, file)
    assert f'--only "GDD at one step by both networks"' in nb12.read_text().replace('\\"', '"')
