"""The committed notebooks as a reader finds them on a clean clone: executed, with outputs that carry no machine, no
error, no live widget and no alarming warning; prose quoting only numbers that an output shows; metadata that
JupyterLab leaves as it is. And the bad input of the small commands (notebooks, lab, bench)."""
import json, re
from pathlib import Path
import pytest
from conftest import refused, run_cmd, run_main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
MACHINE = re.compile(r'(/tmp/|/root/|/home/|/work/|/Users/|[A-Z]:\\\\)')   # paths of the machine the outputs were made on
PERCENT = re.compile(r'(?<![\w.])\d+(?:\.\d+)?%')

def outputs_text(cell:dict)->str:
    "Everything a cell's outputs show as text."
    parts = []
    for o in cell.get('outputs', []):
        if 'text' in o: parts.append(''.join(o['text']))
        for kind, value in o.get('data', {}).items():
            if kind.startswith('text/'): parts.append(''.join(value))
        parts += o.get('traceback', [])
    return '\n'.join(parts)

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_committed_and_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb['cells'] if c['cell_type'] == 'code']
    outputs = [o for c in code for o in c.get('outputs', [])]
    if path.stem not in ('index', '90_readme'): assert outputs, f"{path.name} has no outputs: run mtp_notebooks {path.stem}"
    assert not [o for o in outputs if o['output_type'] == 'error'], f"{path.name} holds an error"
    assert not [o for o in outputs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})], \
        f"{path.name} holds a live widget (no viewer without a kernel shows it): run mtp_notebooks {path.stem}"
    for c in code:
        text = outputs_text(c)
        assert not MACHINE.search(text), f"{path.name}: a machine path in the outputs of {c['source'][:1]}: {MACHINE.search(text)[0]}"
        stderr = ''.join(''.join(o['text']) for o in c.get('outputs', []) if o.get('name') == 'stderr')
        assert not re.search(r'Warning|warn\(', stderr), f"{path.name}: a warning in the outputs of {c['source'][:1]}: {stderr[:300]}"
        assert not re.search(r'no finished run in|tiny random model above', text), \
            f"{path.name} was executed without the main job's run folder: run `mtp_train`, then mtp_notebooks {path.stem}"
        assert 'Training Loss' not in text, f"{path.name} keeps a Trainer progress table (HTML) in the outputs of {c['source'][:1]}"

def evidence_and_prose(markdown:str)->tuple[str, str]:
    "A front page's command outputs (fenced blocks and tables) and the prose around them."
    evidence, prose, fenced = [], [], False
    for line in markdown.splitlines():
        if line.startswith('```'): fenced = not fenced; continue
        (evidence if fenced or line.lstrip().startswith('|') else prose).append(line)
    return '\n'.join(evidence), '\n'.join(prose)

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_quotes_only_numbers_an_output_shows(path):
    "Every percentage in a notebook's prose appears in one of its outputs (on the front page: in a command's output it shows)."
    nb = json.loads(path.read_text())
    prose = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    shown = '\n'.join(outputs_text(c) for c in nb['cells'] if c['cell_type'] == 'code')
    if path.stem == 'index': shown, prose = evidence_and_prose(prose)
    missing = sorted({p for p in PERCENT.findall(prose) if p not in shown})
    assert not missing, f"{path.name} quotes {missing} in its prose, but no output shows them"

def test_front_page_evidence_split():
    evidence, prose = evidence_and_prose("We got 12.5%.\n```\n$ cmd\n12.5%\n```\n| a | 3% |\nand 3%.")
    assert evidence == '$ cmd\n12.5%\n| a | 3% |' and prose == 'We got 12.5%.\nand 3%.'

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_metadata_that_opening_in_jupyterlab_keeps(path):
    "The kernelspec nbdev_clean writes and `mtp_lab` installs, and the language info the kernel reports."
    meta = json.loads(path.read_text())['metadata']
    assert meta['kernelspec'] == {'display_name': 'python3', 'language': 'python', 'name': 'python3'}
    if path.stem not in ('index',): assert meta['language_info']['name'] == 'python', path.name

def test_notebooks_command_bad_input(tmp_path):
    refused(run_cmd('mtp_notebooks', '--names', 'nope', cwd=ROOT), 'mtp_notebooks', "no notebook 'nope' in nbs: pick from 01_reasoning")
    refused(run_main('mtp_notebooks', '--timeout', 0, cwd=ROOT), 'mtp_notebooks', '--timeout must be a finite number > 0, got 0')
    refused(run_cmd('mtp_lab', '--port', 70000, cwd=ROOT), 'mtp_lab', '--port must be a whole number in [1, 65535], got 70000')

@pytest.mark.parametrize('args, message', [
    (['--hidden', '40'], '--hidden must be a multiple of 16'),
    (['--seq_len', '1'], '--seq_len must be a whole number >= 2, got 1'),
    (['--steps', 'many'], "argument --steps: invalid int value: 'many'"),
])
def test_bench_bad_input(tmp_path, args, message):
    run = run_cmd if args == ['--hidden', '40'] else run_main   # one through its real script, the rest in this process
    refused(run('mtp_bench', *args, cwd=tmp_path), 'mtp_bench', message)
