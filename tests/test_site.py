"""`mtp_site` on the whole book, built once into a temporary folder (about 30 s on two cores): a page for every notebook,
its committed figures and tables on it, links that lead somewhere, the search index, and an exported function's
docments in its show_doc table. And the bad input it refuses before any work."""
import html, json, re, subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
import pytest
from conftest import BIN, offline_env, refused, run_cmd, run_main

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(NBS).parts))
HIDDEN = re.compile(r'^\s*#\|\s*(export|exporti|hide|default_exp)\b', re.M)   # cells the site leaves out, as nbdev's docs do

class Page(HTMLParser):
    "What a page links to and what it can be linked at: img sources, hrefs, element ids."
    def __init__(self, path:Path):
        super().__init__()
        self.path, self.images, self.hrefs, self.ids = path, [], [], set()
        self.feed(path.read_text(encoding='utf-8'))
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if 'id' in attrs: self.ids.add(attrs['id'])
        if tag == 'img' and attrs.get('src'): self.images.append(attrs['src'])
        if tag == 'a' and attrs.get('href'): self.hrefs.append(attrs['href'])

@pytest.fixture(scope='module')
def site(tmp_path_factory)->Path:
    "The whole book, built by the real command from the repository's notebooks (HOME in the temporary folder)."
    home, out = tmp_path_factory.mktemp('home'), tmp_path_factory.mktemp('out')
    r = subprocess.run([str(BIN/'mtp_site'), '--out', str(out/'site')], cwd=ROOT, env=offline_env(home),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(rf"wrote {len(NOTEBOOKS)} pages in \d+ s: open .*index\.html", r.stdout), r.stdout
    assert [p.name for p in out.iterdir()] == ['site'], list(out.iterdir())      # nothing beside it (Sphinx's leftovers)
    return out/'site'

@pytest.fixture(scope='module')
def pages(site)->dict:
    "Every HTML page of the site, parsed, by path."
    return {p: Page(p) for p in site.rglob('*.html')}

def page_of(site:Path, notebook:Path)->Path: return site/notebook.relative_to(NBS).with_suffix('.html')

def shown_outputs(notebook:Path)->tuple[int, int]:
    "The PNG outputs and markdown tables of the cells a page shows."
    cells = [c for c in json.loads(notebook.read_text())['cells'] if c['cell_type'] == 'code' and not HIDDEN.search(''.join(c['source']))]
    data = [o.get('data', {}) for c in cells for o in c.get('outputs', [])]
    return sum('image/png' in d for d in data), sum(bool(re.search(r'^\|[-:| ]+\|$', ''.join(d.get('text/markdown', '')), re.M)) for d in data)

def test_every_notebook_has_its_page_with_its_figures_and_tables(site, pages):
    for notebook in NOTEBOOKS:
        page = page_of(site, notebook)
        assert page.is_file(), f"no page for {notebook.relative_to(NBS)}"
        n_png, n_tables = shown_outputs(notebook)
        text = page.read_text(encoding='utf-8')
        assert len(pages[page].images) >= n_png, f"{page.name}: {len(pages[page].images)} images for {n_png} PNG outputs"
        assert text.count('<table') >= n_tables, f"{page.name}: fewer tables than the {n_tables} markdown tables of its outputs"
    assert (site/'.mtp_site').is_file() and not (site/'_sources').exists()

def test_every_image_exists(pages):
    missing = [(p.name, src) for p, page in pages.items() for src in page.images
               if not urlsplit(src).scheme and not (p.parent/unquote(urlsplit(src).path)).is_file()]
    assert not missing, missing[:10]
    assert sum(len(page.images) for page in pages.values()) > 0

def test_internal_links_resolve(site, pages):
    broken = []
    for p, page in pages.items():
        for href in page.hrefs:
            url = urlsplit(href)
            if url.scheme or href.startswith('//'): continue               # the web: not the site's to check
            target = (p.parent/unquote(url.path)).resolve() if url.path else p
            if target.is_dir(): target = target/'index.html'
            if not target.is_file(): broken.append((p.relative_to(site).as_posix(), href)); continue
            if url.fragment and target in pages and url.fragment not in pages[target].ids:
                broken.append((p.relative_to(site).as_posix(), href))
    assert not broken, broken[:10]

def test_front_page_and_parts_in_the_sidebar(site):
    front = (site/'index.html').read_text(encoding='utf-8')
    for caption in ('Part I: experiment', 'Part II: real size', 'Part III: decoding', 'Part IV: studies', 'Plumbing'):
        assert caption in front, caption
    assert front.index('Part I: experiment') < front.index('Part IV: studies') < front.index('Plumbing')
    assert 'load_trunk' in (site/'searchindex.js').read_text(encoding='utf-8')  # the search finds a documented function

def test_show_doc_table_of_an_exported_function(pages):
    "load_trunk's section shows each parameter by name beside its docment, as the installed package has them."
    from fastcore.docments import docments
    from mtp_nb.trunk import load_trunk
    (page,) = [p for p, parsed in pages.items() if 'load-trunk' in parsed.ids and p.parent.name != '_modules']
    text = page.read_text(encoding='utf-8')
    section = text[text.index('id="load-trunk"'):]
    section = section[:section.find('<section', 1) if '<section' in section[1:] else None]
    rows = [re.sub(r'\s+', ' ', html.unescape(re.sub(r'<[^>]+>', '', row))).strip() for row in re.findall(r'<tr.*?</tr>', section, re.S)]
    params = {k: v['docment'] for k, v in docments(load_trunk, full=True).items() if k != 'return'}
    assert params and all(params.values()), params
    for name, doc in params.items():
        assert any(row.startswith(name + ' ') and row.endswith(doc.replace('`', '')) for row in rows), (name, doc, rows)

def test_bad_out_is_refused(tmp_path):
    (tmp_path/'a_file').write_text('x')
    (tmp_path/'full').mkdir(); (tmp_path/'full'/'notes.txt').write_text('mine')
    refused(run_main('mtp_site', '--out', tmp_path/'a_file', cwd=ROOT), 'mtp_site', 'a_file is a file, not a folder, and the site would')
    refused(run_main('mtp_site', '--out', tmp_path/'full', cwd=ROOT), 'mtp_site', 'name a new or empty folder')
    assert (tmp_path/'full'/'notes.txt').read_text() == 'mine'
    refused(run_cmd('mtp_site', cwd=tmp_path), 'mtp_site', 'no settings.ini in . or above: run mtp_site inside the project')
