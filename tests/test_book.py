"""The book's layout: parts in reading order with unique notebook numbers, each notebook one module that imports only
modules to its left, each opening with its claim, what it follows and its Run All time; modules and functions short."""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ['1_experiment', '2_real_size', '3_decoding', '4_studies', 'plumbing']
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if p.stem != 'index' and '.ipynb_checkpoints' not in p.parts)

def number(p:Path)->int: return int(p.stem.split('_')[0])

def module_of(p:Path)->str:
    cells = json.loads(p.read_text())['cells']
    found = [m[1] for c in cells for m in [re.match(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))] if m]
    assert len(found) == 1, f"{p.name} has {len(found)} default_exp cells"
    return found[0]

def test_parts_and_unique_numbers():
    assert sorted({p.parent.name for p in NOTEBOOKS}) == sorted(PARTS)
    numbers = [number(p) for p in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), sorted(numbers)
    ranges = {'1_experiment': range(1, 20), '2_real_size': range(20, 30), '3_decoding': range(30, 40), '4_studies': range(40, 50)}
    for part, allowed in ranges.items():                 # Part k numbers in its own decade (Part I: 01-19)
        got = [number(p) for p in NOTEBOOKS if p.parent.name == part]
        assert got and all(n in allowed for n in got), (part, got)

def test_no_module_imports_one_to_its_right():
    where = {module_of(p): number(p) for p in NOTEBOOKS}
    assert len(where) == len(NOTEBOOKS), "two notebooks export the same module"
    for mod, n in where.items():
        tree = ast.parse((ROOT/'mtp_nb'/f'{mod}.py').read_text())
        imported = {node.module.split('.')[-1] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                    and (node.level == 1 or node.module.startswith('mtp_nb.'))}
        right = sorted(m for m in imported if m in where and where[m] > n)
        assert not right, f"mtp_nb.{mod} ({n:02d}) imports {right}, which come after it"

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_paragraph(path):
    "Title, summary, then one paragraph with the claim, what it follows and how long Run All takes here."
    first = ''.join(json.loads(path.read_text())['cells'][0]['source'])
    assert first.startswith('# ') and '\n> ' in first, path.name
    last = first.rstrip().split('\n\n')[-1]
    assert last.startswith('**Claim:**') and '**Follows:**' in last and '**Run All:**' in last, f"{path.name}: {last[:80]}"

def body_lines(node)->int:
    "Lines of a function's body: its signature (one line per parameter and its docment) and docstring not counted."
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) else node.body
    return node.end_lineno - body[0].lineno + 1 if body else 0

def test_body_lines():
    fn = ast.parse('def f(a, # the a\n      b):\n    "Doc."\n    x = a\n    return x + b').body[0]
    assert body_lines(fn) == 2

def test_modules_and_functions_are_short():
    "Modules ≤ ~300 lines, function bodies ≤ 30."
    for f in sorted((ROOT/'mtp_nb').glob('*.py')):
        if f.name.startswith('_'): continue
        text = f.read_text()
        assert len(text.splitlines()) <= 310, f"{f.name}: {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert body_lines(node) <= 30, f"{f.name}: the body of {node.name} is {body_lines(node)} lines"
