"The `mtp_generate` command end to end, in its own process, on a tiny random trunk folder and random heads."
import json, subprocess, sys
from pathlib import Path
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from mtp_nb.data import reasoning_dataset
from mtp_nb.heads import HEADS_CONFIG, HEADS_WEIGHTS, MTPModel
from mtp_nb.speculative import generate
from mtp_nb.trunk import load_trunk, train_tokenizer

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "A trunk folder (the project's tokenizer + a tiny random Llama) and a heads folder naming it."
    root = tmp_path_factory.mktemp('spec')
    data = reasoning_dataset(n_train=200, n_pretrain=0, n_eval=5, seed=0)
    tok = train_tokenizer(data['train']['text'], vocab_size=600)
    torch.manual_seed(0)
    cfg = LlamaConfig(**SMALL, vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    LlamaForCausalLM(cfg).save_pretrained(root/'trunk'); tok.save_pretrained(root/'trunk')
    base, _ = load_trunk(root/'trunk')
    mtp = MTPModel(base, n_heads=3)
    with torch.no_grad():
        for p in mtp.heads[1:].parameters(): p.add_(0.3 * torch.randn_like(p))
    mtp.save_pretrained(root/'heads')
    return root, list(data['eval']['prompt'])

def run(*args):
    cmd = [str(Path(sys.executable).parent/'mtp_generate'), *map(str, args), '--threads', '1']
    env = {'PATH': str(Path(sys.executable).parent), 'HOME': str(Path.home()), 'HF_HUB_OFFLINE': '1'}
    return subprocess.run(cmd, capture_output=True, env=env, timeout=600)   # bytes: random text may hold a \r

def load_trunk_and_heads(root):
    base, tok = load_trunk(root/'trunk')
    return MTPModel.from_pretrained(root/'heads', base=base).eval(), tok

def test_generates_text_and_statistics(folders):
    root, prompts = folders
    r = run(root/'heads', '--prompt', prompts[1], '--max_new_tokens', 20)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = r.stdout.decode()
    mtp, tok = load_trunk_and_heads(root)
    want = generate(mtp, tok, prompts[1], max_new_tokens=20)
    assert out.startswith(prompts[1] + want.texts[0])                     # the same tokens as in this process
    assert '20 tokens in 20 forward passes' in out and 'acceptance by draft position (heads 2..3)' in out
    assert 'tokens/s' in out

def test_explicit_trunk_and_default_prompt(folders):
    root, prompts = folders
    r = run(root/'heads', '--trunk', root/'trunk', '--max_new_tokens', 5)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert '5 tokens in' in r.stdout.decode()

def one_line_error(r):
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1 and err.startswith('mtp_generate: '), err
    return err

def test_bad_heads_folders_are_one_line(folders, tmp_path):
    root, _ = folders
    assert 'no heads folder at' in one_line_error(run(tmp_path/'nope'))
    assert f'has no {HEADS_CONFIG}' in one_line_error(run(root/'trunk'))
    broken = tmp_path/'broken'; broken.mkdir()
    meta = json.loads((root/'heads'/HEADS_CONFIG).read_text())
    (broken/HEADS_CONFIG).write_text(json.dumps({**meta, 'trunk': None}))
    assert 'names no trunk' in one_line_error(run(broken))
    (broken/HEADS_CONFIG).write_text(json.dumps(meta))                     # right JSON, no weights file
    assert f'cannot read {broken/HEADS_WEIGHTS}' in one_line_error(run(broken))
    (broken/HEADS_WEIGHTS).write_bytes((root/'heads'/HEADS_WEIGHTS).read_bytes())
    (broken/HEADS_CONFIG).write_text(json.dumps({**meta, 'hidden_size': 64}))
    assert 'do not fit this trunk' in one_line_error(run(broken))

def as_run_folder(heads:Path, run_dir:Path)->Path:
    "A finished run folder as `mtp_train` leaves it, as far as decoding cares: the heads in its final/."
    (run_dir/'final').mkdir(parents=True)
    for f in heads.iterdir(): (run_dir/'final'/f.name).write_bytes(f.read_bytes())
    return run_dir

def test_run_folder_decoders_and_head_count(folders, tmp_path):
    "A finished run folder is read through its final/; the module decoder and fewer heads print the same text."
    root, prompts = folders
    run_dir = as_run_folder(root/'heads', tmp_path/'run')
    outs = {}
    for name, extra in dict(fused=[], modules=['--hf_layers'], greedy=['--n_heads', 1]).items():
        r = run(run_dir, '--prompt', prompts[2], '--max_new_tokens', 16, *extra)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        outs[name] = r.stdout.decode()
    text = lambda out: out.split('\n\n16 tokens in')[0]
    assert text(outs['fused']) == text(outs['modules']) == text(outs['greedy'])
    assert '16 tokens in 16 forward passes: 1.00 tokens/forward' in outs['greedy']
    assert 'acceptance by draft position (heads 2..3)' in outs['modules']
    err = one_line_error(run(run_dir, '--n_heads', 5))
    assert 'n_heads must be in 1..3' in err

def test_spec_bench_command(folders, tmp_path):
    "mtp_spec_bench on a run folder: the table on stdout, and table, numbers and plot written into the folder."
    root, _ = folders
    run_dir = as_run_folder(root/'heads', tmp_path/'run')
    cmd = [str(Path(sys.executable).parent/'mtp_spec_bench'), str(run_dir), '--n_prompts', '3', '--max_new_tokens', '12']
    env = {'PATH': str(Path(sys.executable).parent), 'HOME': str(Path.home()), 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '| self-speculative, fused decoder | ' in r.stdout and '3/3 |' in r.stdout
    stats = json.loads((run_dir/'spec_bench.json').read_text())['stats']
    assert stats['speculative']['tokens'] == stats['hf_generate']['tokens'] > 0
    assert (run_dir/'spec_bench.md').read_text().startswith('| decoder (batch 1) |') and (run_dir/'spec_bench.png').stat().st_size > 0
    r = subprocess.run(cmd[:1] + [str(tmp_path/'nope')], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1 and r.stderr.strip().startswith('mtp_spec_bench: no heads folder at')
