"The contracts of docs/architecture.md that the code itself can check: the module graph, and where defaults live."
import subprocess, sys
from pathlib import Path

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
mg = load_script('tools/module_graph.py')


def test_module_graph_has_no_loop_no_upward_import_and_no_library_import_of_cli():
    g = mg.graph()
    assert mg.problems(g) == []
    assert g['cli']['notebook'] == '13_cli' and g['runs']['notebook'] == '00_runs'
    for m, info in g.items():                                   # the command line is a layer on top
        if m not in ('cli', '__main__'): assert 'cli' not in info['top'] + info['lazy'], m
    assert g['__main__']['top'] == ['cli']


def flags_outside_parentheses(source: str) -> list:
    """The `--flag`s that the messages of `raise` statements in `source` name outside parentheses: a library error speaks of
    the Python keyword (`split`), and may add the command-line flag in parentheses (`split (--sgp-split) must be ...`)."""
    import ast, re
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None: continue
        def text(n):                                            # the message's literal text, `{}` for each placeholder
            if isinstance(n, ast.Constant): return n.value if isinstance(n.value, str) else ''
            if isinstance(n, ast.FormattedValue): return '{}'
            return ''.join(text(c) for c in ast.iter_child_nodes(n))
        msg = text(node.exc)
        for m in re.finditer(r'--[a-z][\w-]*', msg):
            if msg[:m.start()].count('(') <= msg[:m.start()].count(')'): out.append(f'line {node.lineno}: {m.group(0)}')
    return out


def test_library_errors_name_the_python_keyword_not_only_the_flag():
    "Issue 30, item 1: the library is used from Python; its error messages name a command-line flag only beside the keyword."
    bad = {p.name: f for p in sorted((ROOT / 'sferd_nb').glob('*.py')) if p.name not in ('cli.py', '__main__.py')
           if (f := flags_outside_parentheses(p.read_text()))}
    assert bad == {}, bad
    assert flags_outside_parentheses('raise ValueError(f"--sgp-split must be in [0, 1], got {s}")') == ['line 1: --sgp-split']
    assert flags_outside_parentheses('raise ValueError(f"split (--sgp-split) must be in [0, 1], got {s}")') == []


def test_lessons_do_not_run_the_command_line():
    "Issue 30, item 1: the lessons end with their science; only notebook 13 (the CLI) and tests/ call the commands."
    import json, re
    bad = [p.name for p in sorted((ROOT / 'nbs').glob('[01][0-9]*.ipynb')) if not p.name.startswith('13_')
           for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code'
           and re.search(r'sferd_nb\.cli\b|from sferd_nb import cli\b', ''.join(c['source']))]
    assert bad == [], bad


def test_module_graph_rules_catch_what_they_forbid():
    node = lambda nb, top=(), lazy=(): dict(notebook=nb, top=list(top), lazy=list(lazy), registry=[])
    bad = mg.problems({'a': node('01_a', ['b']), 'b': node('01_b', ['a']), 'cli': node('13_cli'),
                       'c': node('02_c', lazy=['cli']), 'd': node('04_d', ['e']), 'e': node('04b_e')})
    assert any(p.startswith('import cycle: a -> b -> a') or p.startswith('import cycle: b -> a -> b') for p in bad), bad
    assert any('library module c imports cli' in p for p in bad), bad
    assert any('d (04_d) imports e of a later notebook (04b_e)' in p for p in bad), bad
    assert mg.level('04b_io') > mg.level('04_train') and mg.level('00_data') == mg.level('00_runs')


def test_architecture_page_shows_the_graph_of_the_code():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'module_graph.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_dash_m_runs_every_command():
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'distill', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'sferd-distill' in r.stdout and '--method' in r.stdout, r.stderr
    r = subprocess.run([sys.executable, '-m', 'sferd_nb', 'nope'], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and "unknown command 'nope'" in r.stderr, r.stderr
    for old in ('train', 'distill', 'data', 'demo', 'metrics', 'analysis'):   # the library modules are not scripts
        assert "__name__ == '__main__'" not in (ROOT / 'sferd_nb' / f'{old}.py').read_text(), old


def test_cli_flags_and_defaults_are_generated_from_the_settings_dataclasses(monkeypatch, tmp_path):
    "One place for every default: each setting of each method is a flag whose help shows the dataclass default, and the CLI passes on only what was typed."
    import re
    from dataclasses import fields
    import sferd_nb.cli as cli
    from sferd_nb.distill import METHODS, load_method_modules
    from sferd_nb.data import asset_path
    load_method_modules()
    acts = {a.dest: a for a in cli.distill_parser()._actions}
    for name, m in METHODS.items():
        if m.make_student is None: continue
        for f in fields(m.settings):
            a = acts[f.name]                                           # every setting of every method has its flag
            assert a.option_strings == ['--' + f.name.replace('_', '-')], (name, f.name)
            assert a.default is None and a.type is f.metadata['type'] and a.choices == f.metadata['choices'], (name, f.name)
            assert (f.default is None and 'default:' not in a.help) or a.help.endswith(f'(default: {f.default})'), (name, f.name)
        for k in ('lr', 'solver'):                                     # None: the method's own, which the help lists
            assert getattr(m.run_settings(), k) == getattr(m, k) and (getattr(m, k) is None or
                    re.search(rf'(?<![\w-]){re.escape(name)} {re.escape(str(getattr(m, k)))}\b', acts[k].help)), (name, k)
    seen = []
    monkeypatch.setattr(cli, 'distill', lambda *a, **kw: seen.append(kw) or [])
    teacher = str(asset_path('teachers', 'cifar10_uncond'))
    cli.main_distill(['--method', 'cd', '--teacher', teacher, '--out', str(tmp_path / 'cd'), '--device', 'cpu'])
    cli.main_distill(['--method', 'sferd-pd', '--teacher', teacher, '--out', str(tmp_path / 's'), '--device', 'cpu', '--w', '0.5',
                      '--max-steps', '7'])
    run_keys = {'method', 'resume', 'progress', 'teacher_wrapper', 'student_wrapper', 'extra_meta', 'train_kw'}
    assert {k for k in seen[0] if k not in run_keys} == set()          # nothing typed: the dataclasses' defaults apply
    assert {k: v for k, v in seen[1].items() if k not in run_keys} == dict(w=0.5, max_steps=7)
    for argv, msg in ((['--method', 'pd', '--psi', '2'], 'add --attention-guidance'), (['--method', 'pd', '--N', '4'], 'only apply to'),
                      (['--method', 'cd', '--latent-dim', '8'], 'add --semantic'),
                      (['--method', 'sferd-pd', '--attention-guidance'], 'already guides its teacher'),   # SFERD does both already
                      (['--method', 'sferd-cd', '--semantic'], 'already has the semantic student')):
        r = cli.test_exit(lambda: cli.main_distill(argv + ['--teacher', teacher, '--out', str(tmp_path / 'x'), '--device', 'cpu']), msg)
        assert not (tmp_path / 'x').exists(), r                        # refused before the folder is made



def test_train_teacher_and_eval_defaults_are_the_librarys():
    "sferd-train-teacher and sferd-eval take their defaults from the library (TrainConfig, teacher_sample_fn, teacher_loss, evaluate, TEACHER_DEFAULTS)."
    import inspect
    import sferd_nb.cli as cli
    from sferd_nb.train import TEACHER_DEFAULTS, TrainConfig, teacher_loss, teacher_sample_fn
    from sferd_nb.metrics import evaluate
    d = lambda fn, k: inspect.signature(fn).parameters[k].default
    t = cli.teacher_parser().parse_args(['--out', 'x'])
    assert (t.grad_accum, t.log_every, t.seed, t.amp, t.workers) == (TrainConfig.grad_accum, TrainConfig.log_every, TrainConfig.seed,
                                                                     TrainConfig.amp, TrainConfig.num_workers)
    assert (t.sampler, t.sample_steps, t.weighting) == (d(teacher_sample_fn, 'sampler'), d(teacher_sample_fn, 'steps'), d(teacher_loss, 'weighting'))
    helps = {a.dest: a.help or '' for a in cli.teacher_parser()._actions}
    for flag, key in (('batch_size', 'batch_size'), ('lr', 'lr'), ('warmup', 'warmup_steps'), ('max_steps', 'max_steps')):
        assert getattr(t, flag) is None and all(f'{c} {v[key]:g}' in helps[flag] for c, v in TEACHER_DEFAULTS.items()), flag   # the config's
    e = cli.eval_parser().parse_args(['--checkpoint', 'x'])
    assert (e.num_samples, tuple(e.seeds), e.batch_size, e.sampler, e.amp) == \
        tuple(d(evaluate, k) for k in ('num_samples', 'seeds', 'batch_size', 'sampler', 'amp'))



def test_the_science_classes_defaults_are_the_settings_dataclasses():
    """The lessons' own constructors and equation functions come before the settings dataclasses in their notebooks, so
    they keep their defaults; each must equal the setting a run would use (the dataclass, or the method's lr and solver)."""
    import inspect
    from sferd_nb.distill import CDSettings, ConsistencyDistillation, DistillSettings, ProgressiveDistillation, get_method
    from sferd_nb.guidance import GuidanceSettings, attention_guidance, gaussian_blur, risky_mask
    from sferd_nb.semantic import SGPSettings, SGPStudent
    from sferd_nb.gdd import GANLoss, GDDSettings, TeacherEncoder, TeacherFeatureDiscriminator
    d = lambda fn, k: inspect.signature(fn).parameters[k].default
    pairs = [((ProgressiveDistillation, 'ratio'), DistillSettings.ratio), ((ProgressiveDistillation, 'grid'), DistillSettings.grid),
             ((ProgressiveDistillation, 'seed'), DistillSettings.seed), ((ProgressiveDistillation, 'solver'), get_method('pd').solver),
             ((ConsistencyDistillation, 'N'), CDSettings.N), ((ConsistencyDistillation, 'mu'), CDSettings.mu),
             ((ConsistencyDistillation, 'solver'), get_method('cd').solver),
             ((gaussian_blur, 'sigma'), GuidanceSettings.blur_sigma), ((risky_mask, 'psi'), GuidanceSettings.psi),
             ((risky_mask, 'resolution'), GuidanceSettings.attn_resolution), ((attention_guidance, 'w'), GuidanceSettings.w),
             ((SGPStudent, 'split'), SGPSettings.sgp_split), ((SGPStudent, 'joint_lr_ratio'), SGPSettings.sgp_joint_ratio),
             ((SGPStudent, 'target'), SGPSettings.sgp_target),
             ((TeacherEncoder, 'sigma'), GDDSettings.feat_sigma), ((TeacherFeatureDiscriminator, 'sigma'), GDDSettings.feat_sigma),
             ((GANLoss, 'r1_every'), GDDSettings.r1_every), ((GANLoss, 'lr'), get_method('gdd').lr)]
    wrong = [(fn.__name__, k, d(fn, k), want) for (fn, k), want in pairs if d(fn, k) != want]
    assert wrong == [], wrong

# a positional parameter with a default is allowed only where it is the call's subject (the data set's spec, the demo's
# folder, the number of steps to sample with, ...), the second time of a two-time formula, or `cond` in the denoiser contract den(x_t, t, cond)
POSITIONAL_OPTIONS = {'get_dataset.spec', 'load_images.spec', 'run_demo.out', 'load_extractor.kind', 'teacher_sample_fn.n',
                      'eq14_coefficient.s', 'pd_target.s', 'AttentionGuidedTeacher.steps.s',
                      'sample.steps', 'Model.sample.steps'}
CONTRACT = {'forward', 'steps', '__call__'}


def _public_callables():
    import importlib, inspect, pkgutil, sferd_nb
    for info in pkgutil.iter_modules(sferd_nb.__path__):
        if info.name.startswith('_'): continue
        mod = importlib.import_module(f'sferd_nb.{info.name}')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if getattr(obj, '__module__', None) != mod.__name__: continue
            if inspect.isfunction(obj): yield name, obj
            elif inspect.isclass(obj):
                import dataclasses
                if not dataclasses.is_dataclass(obj) and '__init__' in vars(obj): yield name, obj.__init__
                for m, f in vars(obj).items():
                    if inspect.isfunction(f) and (not m.startswith('_') or m == '__call__'): yield f'{name}.{m}', f


def test_the_denoiser_the_time_and_the_condition_are_annotated_in_public_signatures():
    """Issue 30, item 5: every public parameter named den / denoiser, t or cond is annotated: the denoiser as `DenoiserLike`
    (or a concrete denoiser class), t as `TimeLike` or a tensor, cond as `Cond` or what that function takes (labels)."""
    import inspect
    bad, seen = [], 0
    for name, fn in _public_callables():
        for p in inspect.signature(fn).parameters.values():
            if p.name not in ('den', 'denoiser', 't', 'cond'): continue
            seen += 1
            a = str(p.annotation)
            if p.annotation is inspect.Parameter.empty or (p.name in ('den', 'denoiser') and 'Denoiser' not in a):
                bad.append(f'{name}({p.name}: {a})')
    assert seen >= 100 and bad == [], (seen, bad)


def test_options_are_keyword_only_in_public_functions_with_more_than_three_parameters():
    import inspect
    bad, seen = [], 0
    for name, fn in _public_callables():
        ps = [p for p in inspect.signature(fn).parameters.values() if p.name not in ('self', 'cls')]
        if len(ps) <= 3 or any(p.kind == p.VAR_POSITIONAL for p in ps): continue
        seen += 1
        method = name.split('.')[-1]
        for p in ps:
            if p.kind != p.POSITIONAL_OR_KEYWORD or p.default is p.empty: continue
            if f'{name.removesuffix(".__init__")}.{p.name}' in POSITIONAL_OPTIONS: continue
            if p.name == 'cond' and method in CONTRACT: continue
            bad.append(f'{name}({p.name}=...)')
    assert seen > 60, seen                                        # the walk finds the library's functions
    assert bad == [], f'options that can be passed by position: {bad}'


def _undocumented(label: str, fn, dg, *, args_section: bool = False) -> list:
    """`label(param)` for each parameter of `fn` (not self / cls) without a docment (`dg`: tools/docs_griffe.py); with
    `args_section`, a docstring's `Args:` section may document them instead, if it names each one."""
    import inspect, re
    params = [p for p in inspect.signature(fn).parameters if p not in ('self', 'cls')]
    args = re.search(r'^\s*(?:Args|Arguments|Parameters):\s*$((?:\n\s+\S.*)+)', fn.__doc__ or '', re.M) if args_section else None
    docs = {m: True for m in re.findall(r'^\s+\**(\w+)(?: \(.*?\))?:', args.group(1), re.M)} if args else \
        dg.docments(inspect.getsource(fn))
    return [f'{label}({p})' for p in params if not docs.get(p)]


def test_the_top_level_api_documents_every_parameter_the_nbdev_way():
    "Each parameter of the curated top-level API has a docment (a comment after it), which the API pages show as its table."
    import dataclasses, importlib, inspect, pytest, sferd_nb
    pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    dg = load_script('tools/docs_griffe.py')
    import sferd_nb.distill as D                                      # a module that, called, is its function `distill`
    assert inspect.signature(sferd_nb.distill) == inspect.signature(D.distill) and 'teacher' in inspect.signature(D).parameters
    missing, checked = [], 0
    for name in sferd_nb.__all__:
        obj = getattr(importlib.import_module(f'sferd_nb.{sferd_nb._API[name]}'), name)   # `distill`: the function, not its module
        fns = [(name, obj)] if inspect.isfunction(obj) else []
        if inspect.isclass(obj) and not dataclasses.is_dataclass(obj) and not issubclass(obj, tuple):
            fns = [(f'{name}.__init__', obj.__init__)]
        if name == 'Model': fns = [('Model.sample', obj.sample)]
        for fname, fn in fns:
            missing += _undocumented(fname, fn, dg)
            checked += 1
    assert checked >= 20, checked
    assert missing == [], f'parameters without a docment: {missing}'



def test_every_public_function_and_method_documents_its_parameters():
    """Beyond the top-level API: each function and method a module exports (`__all__`; a class's own methods and those of
    its private parts, e.g. Trainer's) documents every parameter, by a docment or its docstring's `Args:` section."""
    import dataclasses, importlib, inspect, pkgutil, pytest, sferd_nb
    pytest.importorskip('griffe', reason='the docs extra: pip install -e .[docs]')
    dg = load_script('tools/docs_griffe.py')
    missing, checked = [], 0
    for m in pkgutil.iter_modules(sferd_nb.__path__):
        if m.name.startswith('_'): continue
        mod = importlib.import_module(f'sferd_nb.{m.name}')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__: fns = [(name, obj)]
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__ and not dataclasses.is_dataclass(obj) \
                    and not issubclass(obj, tuple):
                parts = [c for c in obj.__mro__ if c.__module__ == mod.__name__ and (c is obj or c.__name__.startswith('_'))]
                fns = [(f'{name}.{k}', getattr(v, '__func__', v)) for c in parts for k, v in vars(c).items()   # class/static: the function
                       if inspect.isfunction(getattr(v, '__func__', v)) and getattr(v, '__func__', v).__module__ == mod.__name__
                       and (not k.startswith('_') or k in ('__init__', '__call__'))]
            else: continue
            for fname, fn in fns:
                if set(inspect.signature(fn).parameters) <= {'self', 'cls'}: continue
                missing += _undocumented(f'{mod.__name__}.{fname}', fn, dg, args_section=True)
                checked += 1
    assert checked >= 300, checked
    assert missing == [], f'parameters without a docment: {missing}'

_REF_PATTERNS = (r"[Nn]otebook (?P<nb>\d\d[a-z]?)'s `(?P<name>\w+)`",              # "notebook 03's `select_attention`"
                 r"`(?P<name>\w+)`[^`\n]{0,12}\((?:from |in |see )?notebook (?P<nb>\d\d[a-z]?)\)",   # "`run_demo` (notebook 11)"
                 r"`(?P<name>\w+)` \(from `(?P<nb>\d\d[a-z]?)_\w+`\)")              # "`denoising_l2` (from `10_eval`)"


def _defined_in() -> dict:
    "{library name: notebooks defining it}, from the `# %% ../nbs/NB.ipynb` cell markers of the exported modules (a module may span two notebooks)."
    import ast, re
    out = {}
    for mod in (ROOT / 'sferd_nb').glob('*.py'):
        parts = re.split(r'^# %% \.\./nbs/(\S+)\.ipynb.*$', mod.read_text(), flags=re.M)
        for nb, chunk in zip(parts[1::2], parts[2::2]):
            for node in ast.parse(chunk).body:
                names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else \
                        [t.id for t in getattr(node, 'targets', [getattr(node, 'target', None)]) if isinstance(t, ast.Name)]
                for n in names: out.setdefault(n, set()).add(nb)
    return out


def wrong_references(text: str, defined: dict) -> list:
    "(notebook number, name) for every prose reference to a library name placed in a notebook that does not define it."
    import re
    bad = []
    for p in _REF_PATTERNS:
        for m in re.finditer(p, text):
            name, nb = m.group('name'), m.group('nb')
            if name in defined and not any(d.startswith(nb + '_') for d in defined[name]): bad.append((nb, name))
    return bad


def test_prose_names_functions_in_the_notebooks_that_define_them():
    "Issue 34: a notebook's markdown that credits a function to another notebook must name the one that exports it."
    import json
    defined, bad, seen = _defined_in(), [], 0
    assert wrong_references("Notebook 06's `select_attention` picks one block", defined) == [('06', 'select_attention')]
    assert wrong_references("`denoising_l2` (from `07_guidance`) computes", defined) == [('07', 'denoising_l2')]
    assert wrong_references("Notebook 03's `select_attention` picks one block", defined) == []
    assert wrong_references("Notebook 08's `SGPStudent` wraps", defined) == [('08', 'SGPStudent')]   # 08b continues 08's module
    assert wrong_references("Notebook 08b's `SGPStudent` wraps and notebook 08's `tweedie_shift`", defined) == []
    import re
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] != 'markdown': continue
            text = ''.join(c['source'])
            seen += sum(len(re.findall(p, text)) for p in _REF_PATTERNS)
            bad += [(nb.stem, *b) for b in wrong_references(text, defined)]
    assert seen >= 10, seen                                                   # the rule sees the course's references
    assert bad == [], f'prose that credits a function to the wrong notebook (notebook, named notebook, name): {bad}'
