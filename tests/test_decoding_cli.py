"`mtp_generate` and `mtp_spec_bench` end to end, each in its own process, on a tiny run folder and a heads folder; and their bad input."
import json
from pathlib import Path
import pytest
import torch
from mtp_nb.config import MTPConfig
from mtp_nb.core import HEADS_CONFIG
from mtp_nb.decoding import generate, heldout_prompts, load_for_decoding
from mtp_nb.heads import HEADS_WEIGHTS
from mtp_nb.train import train
from conftest import TINY_RUN, refused, run_cmd, run_main


@pytest.fixture(scope='module')
def folders(trunk, tmp_path_factory):
    "A finished tiny run (its trunk layers trained), and its model saved again as a heads folder."
    root = tmp_path_factory.mktemp('decoding')
    train(MTPConfig(trunk=trunk, run_dir=str(root/'run'), **TINY_RUN))
    mtp, _ = load_for_decoding(root/'run')
    mtp.save_pretrained(root/'heads', trunk_layers=True)
    return root, heldout_prompts(3)

def generate_refused(root, *args):
    "mtp_generate's bad input, in this process (test_bad_input_is_one_line's first case goes through its real script)."
    return run_main('mtp_generate', *args, cwd=root)

def generate_cmd(root, *args):
    "mtp_generate on one thread (unless the test sets --threads); bytes, since random text may hold a \\r."
    return run_cmd('mtp_generate', *args, *([] if '--threads' in args else ['--threads', 1]), cwd=root, text=False)

def test_generates_the_same_text_as_in_this_process(folders):
    root, prompts = folders
    r = generate_cmd(root, 'run', '--prompt', prompts[1], '--max_new_tokens', 20)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = r.stdout.decode()
    mtp, tok = load_for_decoding(root/'run')
    assert out.startswith(prompts[1] + generate(mtp, tok, prompts[1], max_new_tokens=20).texts[0])
    assert '20 tokens in' in out and 'acceptance by draft position (heads 2..3)' in out and 'tokens/s' in out

def test_run_folder_and_heads_folder_decode_alike(folders):
    "A run folder, its model saved as a heads folder, the module decoder and fewer heads: the same text."
    root, prompts = folders
    outs = {}
    for name, args in dict(run=['run'], heads=['heads'], modules=['run', '--hf_layers'], greedy=['run', '--n_heads', 1],
                           trunk=['heads', '--trunk', json.loads((root/'heads'/HEADS_CONFIG).read_text())['trunk']]).items():
        r = generate_cmd(root, *args, '--prompt', prompts[2], '--max_new_tokens', 16)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        outs[name] = r.stdout.decode().split('\n\n16 tokens in')[0]
    assert len(set(outs.values())) == 1, outs
    r = generate_cmd(root, 'run', '--n_heads', 1, '--max_new_tokens', 5)      # the default prompt
    assert '5 tokens in 5 forward passes: 1.00 tokens/forward' in r.stdout.decode()

def test_bad_input_is_one_line(folders, trunk, tmp_path):
    root, _ = folders
    broken = tmp_path/'broken'; broken.mkdir()
    meta = json.loads((root/'heads'/HEADS_CONFIG).read_text())
    cases = [([tmp_path/'nope'], 'is nothing (no such path): pass a finished run folder'),
             ([trunk], 'is a model folder (an HF config.json and weights): pass a finished run folder'),
             (['run', '--trunk', trunk], 'is a run folder: its trunk is the one it was trained on; drop --trunk'),
             (['run', '--n_heads', 5], 'n_heads must be in 1..3 (the heads this model has), got 5'),
             (['run', '--n_heads', 0], '--n_heads must be a whole number >= 1, got 0'),
             (['run', '--max_new_tokens', 0], '--max_new_tokens must be a whole number >= 1, got 0'),
             (['run', '--threads', -1], '--threads must be a whole number >= 1, got -1'),
             (['run', '--dtype', 'int8'], "unknown dtype 'int8': use one of float32, bfloat16, float16, float64"),
             (['run', '--prompt', ''], 'every prompt needs at least one token'),
             ([broken], 'is an empty folder: pass a finished run folder')]
    for i, (args, message) in enumerate(cases): refused((generate_cmd if i == 0 else generate_refused)(root, *args), 'mtp_generate', message)
    (broken/HEADS_CONFIG).write_text(json.dumps({**meta, 'trunk': None}))
    refused(generate_refused(root, broken), 'mtp_generate', 'names no trunk (the model was built in memory): pass --trunk')
    (broken/HEADS_CONFIG).write_text('{"n_heads": 3')
    refused(generate_refused(root, broken), 'mtp_generate', 'is not valid JSON')
    (broken/HEADS_CONFIG).write_text(json.dumps(meta))                     # the right JSON, a damaged weights file
    (broken/HEADS_WEIGHTS).write_bytes(b'not safetensors')
    refused(generate_refused(root, broken), 'mtp_generate', f'cannot read {broken/HEADS_WEIGHTS} (')
    (broken/HEADS_WEIGHTS).write_bytes((root/'heads'/HEADS_WEIGHTS).read_bytes())
    (broken/HEADS_CONFIG).write_text(json.dumps({**meta, 'hidden_size': 64}))
    refused(generate_refused(root, broken), 'mtp_generate', 'do not fit this trunk (hidden_size: heads 64, trunk 32)')

def test_spec_bench_command(folders, trunk, tmp_path):
    "mtp_spec_bench on a run folder: the table on stdout (peers, chain, tree, sampling), and table, numbers, plot and tree written into the folder."
    root, prompts = folders
    r = run_cmd('mtp_spec_bench', 'run', '--n_prompts', 3, '--max_new_tokens', 12, '--tree_nodes', 4, '--tree_prompts', 2,
                '--assistant', trunk, '--temperatures', '1', cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    for row in ('| self-speculative, fused decoder | ', '| self-speculative, fused decoder, draft tree (4 drafts) | ',
                '| HF prompt lookup decoding, same model | ', '| HF assisted generation, small draft LLaMA | ', '| temperature 1 | '):
        assert row in r.stdout, (row, r.stdout)
    assert r.stdout.count('3/3 |') == 7 and 'wrote run/spec_bench.md' in r.stdout and 'run/tree.json' in r.stdout
    stats = json.loads((root/'run'/'spec_bench.json').read_text())['stats']
    assert stats['speculative']['tokens'] == stats['hf_generate']['tokens'] == stats['speculative_tree']['tokens'] > 0
    assert (root/'run'/'spec_bench.md').read_text().startswith('| decoder (batch 1) |') and (root/'run'/'spec_bench.png').stat().st_size > 0
    tree = json.loads((root/'run'/'tree.json').read_text())
    assert len(tree) == 4 and [0] in tree and (root/'run'/'tree.png').stat().st_size > 0
    texts = [generate_cmd(root, 'run', '--prompt', prompts[0], '--max_new_tokens', 16, *extra).stdout.decode().split('\n\n16 tokens in')[0]
             for extra in ([], ['--tree', 'run/tree.json'], ['--tree', 'run/tree.json', '--hf_layers'])]
    assert len(set(texts)) == 1, texts
    (tmp_path/'bad.json').write_text('[[0], [1, 0, 0]]')
    for args, message in ((['run', '--tree', 'nope.json'], 'no draft tree at nope.json: mtp_spec_bench writes tree.json'),
                          (['run', '--tree', 'run/tree.json', '--temperature', '1'], 'a draft tree is verified greedily'),
                          (['run', '--tree', tmp_path/'bad.json'], 'path [1, 0] is missing'),
                          (['run', '--tree', 'run/spec_bench.md'], 'is not a draft tree\'s JSON')):
        refused(generate_refused(root, *args), 'mtp_generate', message)
    for args, message in ((['nope'], 'is nothing (no such path)'), (['run', '--n_prompts', 0], '--n_prompts must be a whole number >= 1'),
                          (['run', '--seed', -2], '--seed must be a whole number in [0, 4.29497e+09], got -2'),
                          (['run', '--tree_nodes', -1], '--tree_nodes must be a whole number >= 0'),
                          (['run', '--temperatures', 'hot'], '--temperatures must be numbers separated by commas'),
                          (['run', '--assistant', tmp_path/'nothing'], 'nothing')):
        refused((run_cmd if args == ['nope'] else run_main)('mtp_spec_bench', *args, cwd=root), 'mtp_spec_bench', message)   # one through its script
