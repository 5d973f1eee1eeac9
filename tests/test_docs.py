"""The docs site (issue 18): the rendering rules of tools/make_docs.py, and the built site in a real browser.

The browser tests build the site, serve it on 127.0.0.1 and load every page in headless Chromium (Debian's
`chromium`, driven over the Chrome DevTools protocol with `websocket-client`): no console errors or failed loads, no
request to another host, every image loaded (naturalWidth > 0), every formula rendered by KaTeX (no raw `$$`, no
KaTeX error), no list merged into a paragraph (a `<p>` holding a '- ' or '2. ' line), every internal link and anchor
resolves, the search index is there. Screenshots of index, 07_guidance and an API page go to the build folder's
`screenshots/`.

- `test_site_in_browser` (default suite, ~1 min): the site from the notebooks as committed (no outputs), in
  `build/docs-test/`;
- `test_executed_site_in_browser` (`-m slow`, `make docs-check`): the real `make docs` build — every notebook executed
  (reusing `build/docs/executed/` when nothing changed), `site/` — plus checks on the outputs (figures present, no
  ANSI codes, warnings, widget reprs or absolute paths).
"""
from __future__ import annotations

import base64, functools, http.server, importlib.util, json, os, re, shutil, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.parse, urllib.request
from pathlib import Path

import pytest

from conftest import load_script, write_nb as _nb

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip('nbdev', reason='the docs tools need the dev extras: pip install -e .[dev]')


def _load_make_docs(): return load_script('tools/make_docs.py')


md = _load_make_docs()
CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
needs_site_tools = pytest.mark.skipif(importlib.util.find_spec('mkdocs') is None or importlib.util.find_spec('mkdocstrings') is None,
                                      reason='mkdocs/mkdocstrings missing: `make docs` installs them (pip install -e .[docs])')
needs_browser = pytest.mark.skipif(CHROMIUM is None or importlib.util.find_spec('websocket') is None,
                                   reason='no headless browser: `make docs` installs it (apt-get install -y chromium; '
                                          'pip install -e .[docs] for websocket-client)')


# ---------------------------------------------------------------------------------------------------------------
# rendering rules (fast, no browser)



def test_clean_text_strips_ansi_bars_warnings_widgets_and_paths():
    t = ('\x1b[2K\x1b[32mloss 0.5\x1b[0m\n'
         '/x/site-packages/torch/nn/a.py:12: UserWarning: something deprecated\n  warnings.warn(msg)\n'
         ' 50%|#####     | 5/10 [00:01<00:01,  4.00it/s]\r100%|##########| 10/10 [00:02<00:00,  4.00it/s]\n'
         'VBox(children=(HTML(value=""), FloatProgress(value=0.0)))\n'
         f'wrote {ROOT}/runs/x.pt and /tmp/tmpab12cd/pd/config.json\n[2Kdone')
    out = md.clean_text(t)
    assert out.split('\n') == ['loss 0.5', 'wrote runs/x.pt and <tmp>/pd/config.json', 'done']


def test_test_cell_rule():
    tests = "x = f(2)\ntest_eq(x, 4)\ntest_close(g(x), 1.)\nassert x > 0\nwith pytest.raises(ValueError): f(-1)"
    lesson = "x = f(2)\ny = g(x)\nz = h(y)\nplt.plot(z)\ntest_eq(z.shape, (3,))"
    c = lambda src, **d: md.read_cells(_nb(Path(tempfile.mkdtemp()) / 'a.ipynb', [src])).cells[0]
    assert md.is_test_cell(c(tests)) and md.test_stats(tests)[0] == 5
    assert not md.is_test_cell(c(lesson))                      # one check among lesson code: shown as code
    assert not md.is_test_cell(c('#| export\n' + tests))        # exported code is never a test cell
    assert not md.is_test_cell(c("print('hi')"))


def test_a_docments_signature_counts_as_one_line_for_the_open_rule():
    "A core function stays open in its lesson's page when docments spread its signature over a line per parameter."
    sig = 'def f(a: int,  # the first\n      b: int,  # the second\n      *,\n      c=1,     # the third\n     ) -> int:\n'
    body = '    "doc"\n' + ''.join(f'    a = a + {i}\n' for i in range(md.OPEN_EXPORT_LINES - 3)) + '    return a'
    assert md.shown_lines(sig + body) == md.OPEN_EXPORT_LINES                    # open, though the cell has 19 lines
    assert md.shown_lines(sig + body + '\nx = 1') == md.OPEN_EXPORT_LINES + 1   # other lines count
    assert md.shown_lines('def g(x): return x') == 1


def test_display_math_gets_its_own_block_inside_paragraphs_and_lists():
    src = 'We have\n$$a_1 = b_2$$\nand more.\n\n1. item\n   $$c = d$$\n   text'
    out = md.fix_display_math(md.fix_list_indent(src))
    assert 'We have\n\n$$\na_1 = b_2\n$$\n\nand more.' in out
    assert '1. item\n\n    $$\n    c = d\n    $$\n\n    text' in out


def test_render_honours_directives_and_shows_course_run_results(tmp_path, monkeypatch):
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    nbs = tmp_path / 'nbs'; (nbs / 'images').mkdir(parents=True)
    (tmp_path / 'docs').mkdir(); (tmp_path / 'docs' / 'architecture.md').write_text('# A\n')
    (nbs / 'images' / '42_shown.png').write_bytes(base64.b64decode(
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII='))
    (nbs / 'images' / '42_table.csv').write_text('method,fid\nPD,48.1\n')
    nb = _nb(nbs / '42_demo.ipynb', [
        "#| default_exp demo", ('md', '# Demo: a page\n> summary\n\nSee [data](00_data.ipynb) and `docs/`: '
                                    '[arch](../docs/architecture.md).'),
        "#| hide\nsecret = 'hidden'\nfrom fastcore.test import *", "#| export\ndef f(x):\n    'doc'\n    return 2 * x",
        "import sys\nx = f(10)\nprint('/x/a.py:3: UserWarning: noisy\\n  warnings.warn(m)', file=sys.stderr)\nprint('value', x)",
        "test_eq(f(1), 2)\ntest_eq(f(2), 4)", "#| slow\nbudget = 10_000",
        ('md', 'The course run:\n\n![course-run figure](images/42_shown.png)')])
    page = md.render(nb, tmp_path / 'pages', run=True, cfg={'git_url': 'https://example.org/r'}, root=tmp_path,
                     known_pages={'00_data', '42_demo'}).read_text()
    assert 'secret' not in page and '#|' not in page
    assert '???+ abstract "exported code: `f`"' in page                    # short: shown open
    assert '??? success "tests: 2 checks"' in page
    assert '!!! info "course run, not executed in the docs build"' in page and 'budget = 10_000' in page
    assert '```text\nvalue 20\n```' in page and page.count('noisy') == 1      # the warning only in the code shown
    assert '[data](00_data.md)' in page and '[arch](architecture.md)' in page
    assert '![course-run figure](images/42_shown.png){ #result-42_shown }' in page
    assert '(#result-42_shown)' in page                          # the callout links the figure the prose shows ...
    assert '| PD | 48.1 |' in page                                # ... and renders the result it does not show


def test_site_settings_and_module_discovery():
    cfg = md.settings()
    assert md.site_url(cfg) == cfg['doc_host'].rstrip('/') + '/' + cfg['doc_baseurl'].strip('/') + '/'
    mods = md.modules()
    assert 'sferd_nb.diffusion' in mods and 'sferd_nb.guidance' in mods
    assert set(mods) >= {f'sferd_nb.{p.stem}' for p in (ROOT / 'sferd_nb').glob('*.py') if not p.stem.startswith('_')}
    order = [p.name for p in md.notebooks()]
    assert order[0] == 'index.ipynb' and order[1:] == sorted(order[1:])


# ---------------------------------------------------------------------------------------------------------------
# the browser: a minimal Chrome DevTools protocol client

class CDP:
    "One page target over a websocket: `call` sends a command and waits for its answer; events are kept in `events`."
    def __init__(self, ws_url: str, timeout: float = 30):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True, enable_multithread=True)
        self.n, self.events = 0, []

    def call(self, method: str, timeout: float = 30, **params):
        self.n += 1; mid = self.n
        self.ws.send(json.dumps(dict(id=mid, method=method, params=params)))
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == mid:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg.get('result', {})
            if 'method' in msg: self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, name: str, timeout: float = 30):
        end = time.time() + timeout
        while time.time() < end:
            for e in self.events:
                if e['method'] == name: return e
            self.ws.settimeout(max(0.1, end - time.time()))
            try: msg = json.loads(self.ws.recv())
            except Exception: break                                  # noqa: BLE001 (timeout)
            if 'method' in msg: self.events.append(msg)
        raise TimeoutError(name)

    def evaluate(self, expr: str, timeout: float = 30):
        r = self.call('Runtime.evaluate', timeout=timeout, expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'page script failed: {r["exceptionDetails"]}')
        return r['result'].get('value')


class Browser:
    "Headless Chromium with remote debugging on 127.0.0.1; every other host is unresolvable (nothing can load from a CDN)."
    def __init__(self, width: int = 1280, height: int = 1000):
        self.profile = tempfile.mkdtemp(prefix='sferd-docs-chromium-')
        self.proc = subprocess.Popen(
            [CHROMIUM, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
             '--no-default-browser-check', '--disable-extensions', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--mute-audio',
             '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1', '--remote-debugging-address=127.0.0.1',
             '--remote-debugging-port=0', '--remote-allow-origins=*', f'--user-data-dir={self.profile}',
             f'--window-size={width},{height}', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, end = Path(self.profile) / 'DevToolsActivePort', time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > end or self.proc.poll() is not None: self.close(); raise RuntimeError('chromium did not start')
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10).read())
        page = next(t for t in targets if t['type'] == 'page')
        self.cdp = CDP(page['webSocketDebuggerUrl'])
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable', 'Network.enable'): self.cdp.call(m)
        self.cdp.call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=False)

    def close(self):
        try: self.proc.terminate(); self.proc.wait(10)
        except Exception: self.proc.kill()                          # noqa: BLE001
        shutil.rmtree(self.profile, ignore_errors=True)


_PAGE_REPORT = r"""
(async () => {
  const until = Date.now() + 15000;                            // math rendered, images settled
  const ready = () => [...document.querySelectorAll('.arithmatex')].every(e => e.querySelector('.katex') || e.querySelector('.katex-error'))
                      && [...document.images].every(i => i.complete);
  while (!ready() && Date.now() < until) await new Promise(r => setTimeout(r, 100));
  const raw = [];                                              // text outside code and math that still has $$
  const walker = document.createTreeWalker(document.querySelector('article') || document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, .katex, script, style, .arithmatex')) continue;
    if (n.nodeValue.includes('$$')) raw.push(n.nodeValue.trim().slice(0, 80));
  }
  const unrendered = [...document.querySelectorAll('.arithmatex')].filter(e => !e.querySelector('.katex'));
  return {
    title: document.title,
    images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    raw_dollars: raw,
    katex: document.querySelectorAll('.katex').length,
    katex_errors: [...document.querySelectorAll('.katex-error')].map(e => e.getAttribute('title') || e.textContent).slice(0, 5),
    unrendered: unrendered.map(e => e.textContent.slice(0, 60)).slice(0, 5),
    search_box: !!document.querySelector('input[data-md-component=search-query], .md-search__input'),
    nav_items: document.querySelectorAll('.md-nav--primary .md-nav__link').length,
  };
})()
"""


@pytest.fixture
def serve():
    "serve(site) -> base URL of an HTTP server on 127.0.0.1 for that folder (stopped after the test)."
    servers = []
    def start(site: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a): pass
        h = functools.partial(Quiet, directory=str(site))
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)
        threading.Thread(target=srv.serve_forever, daemon=True).start(); servers.append(srv)
        return f'http://127.0.0.1:{srv.server_address[1]}/'
    yield start
    for s in servers: s.shutdown(); s.server_close()


def site_pages(site: Path) -> list:
    "Every HTML page of the site (its folder URLs), index first."
    pages = sorted(p.parent.relative_to(site).as_posix() + '/' for p in site.rglob('index.html'))
    return ['' if p == './' else p for p in pages]


_MERGED = re.compile(r'\n\s*(?:[-*+]|\d+\.)\s+\S')   # '2020) applies' may wrap a line; '2. x' and '- x' are lists


def merged_lists(site: Path, page: str) -> list:
    "Paragraphs of a page's article that hold a list the markdown did not parse as one (a line starting '- ' or '2. ')."
    f = site / page / 'index.html' if page else site / 'index.html'
    art = re.search(r'<article\b.*?</article>', f.read_text(errors='replace'), re.S)
    paras = re.findall(r'<p\b[^>]*>(.*?)</p>', art.group(0) if art else '', re.S)
    return [re.sub(r'<[^>]+>', '', t)[:80].replace('\n', ' / ') for t in paras if _MERGED.search(re.sub(r'<[^>]+>', '', t))]


def check_site(site: Path, base: str, shots: Path, shot_pages: dict, pages: list | None = None) -> dict:
    """Load every page (or `pages`); assert the browser checks of the module docstring; save screenshots of
    `shot_pages` ({page: name}); returns {page: report}."""
    assert (site / 'search' / 'search_index.json').exists(), 'no search index'
    index = json.loads((site / 'search' / 'search_index.json').read_text())
    problems, reports, links = [], {}, {}
    located = {d['location'].split('#')[0] for d in index['docs']}
    missing = [p for p in site_pages(site) if p not in located]
    pages = site_pages(site) if pages is None else pages
    assert pages, 'no pages'
    assert not missing, f'pages missing from the search index: {missing}'
    shots.mkdir(parents=True, exist_ok=True)
    b = Browser()
    try:
        cdp = b.cdp
        for p in pages:
            cdp.events.clear()
            cdp.call('Page.navigate', url=base + p)
            cdp.wait_event('Page.loadEventFired', timeout=30)
            rep = cdp.evaluate(_PAGE_REPORT, timeout=40)
            reports[p] = rep
            for e in cdp.events:
                m, prm = e['method'], e.get('params', {})
                if m == 'Runtime.exceptionThrown':
                    problems.append(f'{p}: exception {prm["exceptionDetails"].get("exception", {}).get("description", prm["exceptionDetails"].get("text"))}')
                elif m == 'Runtime.consoleAPICalled' and prm.get('type') in ('error', 'assert'):
                    problems.append(f'{p}: console.error ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in prm.get('args', [])))
                elif m == 'Log.entryAdded' and prm['entry'].get('level') == 'error':
                    problems.append(f'{p}: {prm["entry"].get("text")} {prm["entry"].get("url", "")}')
                elif m == 'Network.requestWillBeSent':
                    u = prm['request']['url']
                    if not (u.startswith(base) or u.startswith(('data:', 'blob:', 'about:'))):
                        problems.append(f'{p}: request to another host {u}')
                elif m == 'Network.loadingFailed' and not prm.get('canceled'):
                    problems.append(f'{p}: a load failed ({prm.get("errorText")})')
            problems += [f'{p}: image did not load {i["src"]}' for i in rep['images'] if not i['ok']]
            problems += [f'{p}: raw $$ in "{t}"' for t in rep['raw_dollars']]
            problems += [f'{p}: merged list in a paragraph "{t}"' for t in merged_lists(site, p)]
            problems += [f'{p}: KaTeX error {t}' for t in rep['katex_errors']]
            problems += [f'{p}: math not rendered "{t}"' for t in rep['unrendered']]
            if not rep['search_box']: problems.append(f'{p}: no search box')
            if rep['nav_items'] < 10: problems.append(f'{p}: sidebar navigation has {rep["nav_items"]} links')
            for u in rep['links']:
                if u.startswith(base): links.setdefault(u, p)
            if p in shot_pages:
                png = cdp.call('Page.captureScreenshot', format='png')['data']
                (shots / f'{shot_pages[p]}.png').write_bytes(base64.b64decode(png))
                fig = cdp.evaluate("(() => { const i = [...document.querySelectorAll('article img')].find(i => i.naturalWidth > 60);"
                                   " if (!i) return false; i.scrollIntoView({block: 'center'}); return true; })()")
                if fig:
                    time.sleep(0.3)
                    png = cdp.call('Page.captureScreenshot', format='png')['data']
                    (shots / f'{shot_pages[p]}_figure.png').write_bytes(base64.b64decode(png))
        # the search index, as the page's search would fetch it
        n = cdp.evaluate(f"fetch('{base}search/search_index.json').then(r => r.json()).then(j => j.docs.length)")
        if not n: problems.append('the search index is empty in the browser')
    finally:
        b.close()
    problems += check_links(links, site)
    assert not problems, f'{len(problems)} problems in the site:\n' + '\n'.join(problems[:60])
    return reports


def check_links(links: dict, site: Path) -> list:
    "Every internal link's file exists (served) and its #anchor is an id in that page."
    bad, ids = [], {}
    for u, page in sorted(links.items()):
        parts = urllib.parse.urlsplit(u)
        path = urllib.parse.unquote(parts.path).lstrip('/')
        f = site / path
        if f.is_dir() or path.endswith('/') or path == '': f = f / 'index.html'
        if not f.exists(): bad.append(f'{page}: broken link {u}'); continue
        frag = urllib.parse.unquote(parts.fragment)
        if frag and f.suffix == '.html':
            if f not in ids: ids[f] = set(re.findall(r'\bid="([^"]+)"', f.read_text(errors='replace')))
            if frag not in ids[f]: bad.append(f'{page}: missing anchor {u}')
    return bad


SHOTS = {'': 'index', '07_guidance/': '07_guidance', 'api/guidance/': 'api_guidance'}


@needs_site_tools
def test_the_strict_build_fails_on_an_asset_from_another_host(tmp_path):
    """mkdocs.yml's privacy plugin (Material's own, `assets_fetch: false`) makes an image, script, style or font from another
    host a warning, which `make_docs`' `--strict` build turns into an error; nothing is downloaded."""
    import yaml
    conf = yaml.safe_load((ROOT / 'mkdocs.yml').read_text())
    privacy = next(p for p in conf['plugins'] if isinstance(p, dict) and 'privacy' in p)
    assert privacy['privacy']['assets_fetch'] is False
    (tmp_path / 'docs').mkdir(); (tmp_path / 'docs' / 'index.md').write_text('# A page\n\n![remote](https://cdn.example.org/x.png)\n')
    (tmp_path / 'mkdocs.yml').write_text(yaml.safe_dump(dict(site_name='x', site_url=conf.get('site_url', 'https://example.org/'),
                                                             theme=dict(name='material', font=False), plugins=[privacy])))
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-q'], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    assert r.returncode != 0 and 'cdn.example.org/x.png' in r.stdout + r.stderr, r.stdout + r.stderr


@needs_site_tools
@needs_browser
def test_site_in_browser(serve):
    "The fast variant: the site from the committed notebooks (no outputs), checked page by page in Chromium."
    build = ROOT / 'build' / 'docs-test'
    t0 = time.time()
    site = md.build(execute_nbs=False, build_dir=build, site_dir=build / 'site')
    t_build = time.time() - t0
    reports = check_site(site, serve(site), build / 'screenshots', SHOTS)
    assert reports['07_guidance/']['katex'] > 20                 # the page's equations are typeset
    assert any('07_students_course_run' in i['src'] and i['ok'] for i in reports['07_guidance/']['images'])
    assert (build / 'screenshots' / '07_guidance.png').exists()
    assert len(site_pages(site)) >= 2 + len(md.notebooks()) + len(md.modules())
    # the checks bite: a copy of the index page with each kind of fault
    bad = Path(tempfile.mkdtemp(prefix='sferd-docs-bad-'))
    try:
        shutil.copytree(site, bad / 'site')
        page = bad / 'site' / 'index.html'
        page.write_text(page.read_text().replace('</article>', '<p>left raw: $$x^2$$</p><img src="missing.png">'
                        '<p>a list the markdown missed:\n- one\n- two</p>'
                        '<a href="nope/">x</a><a href="07_guidance/#no-such-anchor">y</a>'
                        '<script>console.error("boom")</script><img src="https://cdn.example.org/x.png"></article>', 1))
        with pytest.raises(AssertionError) as e: check_site(bad / 'site', serve(bad / 'site'), bad / 'shots', {}, pages=[''])
        for what in ('raw $$', 'merged list', 'image did not load', 'broken link', 'missing anchor', 'console.error boom',
                     'request to another host'):
            assert what in str(e.value), (what, str(e.value))
    finally:
        shutil.rmtree(bad, ignore_errors=True)
    print(f'docs site: build {t_build:.0f} s, browser checks {time.time() - t0 - t_build:.0f} s')


def _slow_selected(request) -> bool:
    expr = request.config.getoption('markexpr') or ''
    return bool(re.search(r'(?<!not )\bslow\b', expr)) or os.environ.get('SFERD_DOCS_SLOW') == '1'


@pytest.mark.slow
@needs_site_tools
@needs_browser
def test_executed_site_in_browser(serve, request):
    "The `make docs` build: notebooks executed (default cells), outputs cleaned, figures loaded, all pages checked."
    if not _slow_selected(request): pytest.skip('executes every notebook (minutes): run with -m slow or make docs-check')
    t0 = time.time()
    site = md.build(execute_nbs=True)                            # build/docs/, site/ (reuses up-to-date executed copies)
    t_build = time.time() - t0
    pages_dir = md.BUILD / 'pages'
    bad = []
    for f in sorted(pages_dir.glob('*.md')):
        t = re.sub(r'(`{3,})python\n.*?\n[ \t]*\1', '', f.read_text(), flags=re.S)      # outputs and prose, not code
        for pat, what in ((r'\x1b\[|\[2K', 'ANSI code'), (r'\w+Warning: ', 'a warning'), (r'VBox\(children=', 'widget repr'),
                          (re.escape(str(ROOT)), 'the repository path'), (r'(?<![\w<])/tmp/', 'a /tmp path'),
                          (r'\d+%\|[^|]*\|', 'a tqdm bar')):
            if re.search(pat, t): bad.append(f'{f.name}: {what}')
    assert not bad, bad
    figs = {p: len([i for i in rep['images'] if '_files/' in i['src']])
            for p, rep in check_site(site, serve(site), md.BUILD / 'screenshots', SHOTS).items()}
    assert figs['07_guidance/'] >= 3 and figs['05_distill/'] >= 3, figs          # executed figures are on the pages
    print(f'executed docs site: build {t_build:.0f} s, browser checks {time.time() - t0 - t_build:.0f} s')


def test_page_title_skips_comments_in_code_blocks(tmp_path):
    "A notebook's install cell opens with a `# ...` comment: the page title (and its nav label) is still the lesson's heading."
    md = _load_make_docs()
    p = tmp_path / 'x.md'
    p.write_text("[badge](x)\n\n```python\n# in Colab or a bare Jupyter: install\ntry: import x\n```\n\n# Lesson: the real title\n\ntext\n")
    assert md.page_title(p) == 'Lesson: the real title'
    p.write_text("~~~\n# a comment\n~~~\n# Title two\n")
    assert md.page_title(p) == 'Title two'


def test_course_run_json_is_shown_as_tables():
    "Issue 34: a course run's JSON in the docs is tables (records of a list, other leaves as key | value), the file collapsed below."
    obj = dict(preset='full', seconds=12.345678, settings=dict(seeds=[0, 1, 2], note='a|b'),
               rows=[dict(name='pd', fid=[66.8, 65.5], fid_mean=66.15, extra=dict(x=1)), dict(name='cd', fid=[77.0, 77.9], fid_mean=77.45)],
               fid=dict(standin={'100': {'noise': 76.6, 'teacher': 8.1}, '500': {'noise': 77.3, 'teacher': 5.4}}))
    t = md.json_tables(obj)
    assert '| `seconds` | 12.35 |' in t and '| `settings.seeds` | 0, 1, 2 |' in t and '| `settings.note` | a\\|b |' in t
    assert '| name | fid_mean | fid |' in t and '| pd | 66.15 | 66.8, 65.5 |' in t and 'extra' not in t   # nested dicts left out
    assert '**fid.standin**' in t and '| 500 | 77.3 | 5.4 |' in t
    assert md.json_tables([]) == '(no table: see the whole file below)'
    one = md.json_tables(dict(runs={'0': {'variant a': dict(wall_s=3., recall=.5, fid_mean=1.5, fid_real=9.)},
                                    '1': {'variant a': dict(wall_s=4., recall=.25, fid_mean=2.5, fid_real=8.)}}))
    assert '**runs.1**' in one and '| name | fid_mean | fid_real | recall | wall_s |' in one   # one record: a table too; FID and recall first
    assert '| variant a | 2.5 | 8 | 0.25 | 4 |' in one
