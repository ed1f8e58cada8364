"README.md must be what `mtp_readme` makes from nbs/index.ipynb, and carry the two copy-paste lines."
import re, subprocess, sys
from pathlib import Path
from mtp_nb.readme import make_readme

ROOT = Path(__file__).resolve().parents[1]

def test_readme_in_step_with_index():
    assert (ROOT/'README.md').read_text(encoding='utf-8') == make_readme(ROOT/'nbs'/'index.ipynb'), \
        "README.md is out of step with nbs/index.ipynb: run `mtp_readme` and commit both"

def test_readme_has_exactly_two_copy_paste_lines():
    text = (ROOT/'README.md').read_text(encoding='utf-8')
    lines = re.findall(r'```sh\n(.*?)\n```', text, flags=re.S)
    assert len(lines) == 2 and all('\n' not in l for l in lines), lines
    assert 'pip install -e .' in lines[0] and 'nbdev_test' in lines[1] and 'pytest tests' in lines[1]

def test_check_command_fails_on_drift(tmp_path):
    "`mtp_readme --check` exits non-zero when README.md differs from the notebook."
    for name in ('settings.ini',): (tmp_path/name).write_text((ROOT/name).read_text())
    (tmp_path/'nbs').mkdir()
    (tmp_path/'nbs'/'index.ipynb').write_text((ROOT/'nbs'/'index.ipynb').read_text())
    (tmp_path/'README.md').write_text('stale\n')
    cmd = [str(Path(sys.executable).parent/'mtp_readme'), '--check']  # the installed console command
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and 'out of step' in r.stderr
    subprocess.run(cmd[:-1], cwd=tmp_path, check=True, capture_output=True)
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_front_page_tables_are_notebook_outputs():
    "Every table row the front page quotes is in some committed notebook's output: one run behind each number."
    import json
    text = (ROOT/'README.md').read_text(encoding='utf-8')
    quoted, fenced = [], False
    for l in text.splitlines():
        if l.startswith('```'): fenced = not fenced
        elif fenced and l.startswith('| ') and not set(l) <= set('|-: '): quoted.append(l)
    outputs = []
    for nb in (ROOT/'nbs').rglob('*.ipynb'):
        for c in json.loads(nb.read_text())['cells']:
            for o in c.get('outputs', []):
                outputs.append(''.join(o.get('text', '')))
                outputs += [''.join(v) for k, v in o.get('data', {}).items() if k.startswith('text/')]
    shown = '\n'.join(outputs)
    assert quoted, "the front page quotes no table"
    missing = [l for l in quoted if l not in shown]
    assert not missing, f"rows on the front page that no notebook output shows: {missing[:3]}"
