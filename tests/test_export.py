"""`mtp_export` end to end: the folders it writes load in a fresh process that cannot import `mtp_nb`, and
`from_pretrained(folder, trust_remote_code=True).generate(...)` gives token for token what the plain next-token model's
greedy `generate` gives (every head design, float32 and float64, left-padded batches, EOS, cut points), reports its
tokens per verification pass, honours the usual arguments, samples from the model's own distribution; without
`trust_remote_code` the folder is a plain model. And the command's bad input."""
import copy, json, subprocess, sys, sysconfig
from pathlib import Path
import pytest
import torch
from mtp_nb import hubgen
from mtp_nb.export import GENERATE_FILE, export, generate_source, with_draft_heads
from mtp_nb.heads import MTPModel
from mtp_nb.trunk import load_trunk, tiny_causal_lm
from conftest import offline_env, refused, run_cmd, run_main

DESIGNS = {'layer-float32': ('layer', 'float32', 0.0), 'layer-float64': ('layer', 'float64', 0.0), 'medusa-float32': ('medusa', 'float32', 0.05),
           'sequential-float64': ('sequential', 'float64', 0.0)} # exported folder -> (head design, dtype, noise on heads 2..4)
SAMPLES, PROMPT, N_NEW = 4000, [1, 5, 2, 4, 3, 0], 3 # the distribution test: rows, their prompt, tokens each continues by

def echo_trunk(trunk:str, root:Path)->str:
    "The tiny trunk made to repeat each token a while, then switch: unembedding = 3 x embedding, layers' outputs x4 (so heads draft right, but not always)."
    model, tokenizer = load_trunk(trunk)
    with torch.no_grad():
        model.lm_head.weight.copy_(3 * model.model.embed_tokens.weight)
        for layer in model.model.layers: layer.self_attn.o_proj.weight.mul_(4); layer.mlp.down_proj.weight.mul_(4)
    model.save_pretrained(root/'echo-trunk'); tokenizer.save_pretrained(root/'echo-trunk')
    return str(root/'echo-trunk')

def heads_folder(trunk:str, root:Path, head_type:str, noise:float=0.0, name:str='')->Path:
    "Heads 2..4 of `head_type` on `trunk`, as initialised (copies of the last layer, identity ResBlocks) and perturbed by `noise`."
    mtp = MTPModel(load_trunk(trunk, tokenizer=False)[0], 4, head_type)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in mtp.heads[1:].parameters(): p.add_(noise * torch.randn_like(p))
    return mtp.save_pretrained(root/f'heads-{name or head_type}')

def six_token_folder(root:Path)->Path:
    "A float64 model over 6 tokens (logits x10, so what follows depends on the context) with 4 perturbed layer heads, exported by hand (no tokenizer)."
    mtp = MTPModel(tiny_causal_lm('llama', 0, vocab_size=6).double(), 4).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        mtp.lm_head.weight.mul_(10.0)
        for p in mtp.heads[1:].parameters(): p.add_(0.05 * torch.randn_like(p))
    model, meta = with_draft_heads(mtp)
    model.save_pretrained(root/'six')
    hubgen.save_draft_heads(str(root/'six'), model.__dict__['draft_heads'][0], meta)
    (root/'six'/GENERATE_FILE).parent.mkdir(); (root/'six'/GENERATE_FILE).write_text(generate_source())
    return root/'six'

# runs in a fresh interpreter (-I -S: no user site, no .pth files, so no editable install) with only site-packages on its path
SCRIPT = r'''
import json, math, sys, warnings
sys.path.append(sys.argv[1])
try:
    import mtp_nb; importable = True
except ImportError: importable = False
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
folders, out = json.loads(sys.argv[2]), {'mtp_nb importable': importable}

def calls(fast, plain, tok):
    "The same requests to the folder's generate and to the plain model's greedy generate: (fast, plain, tokens per pass) each."
    prompts = ['Tom has 3 apples and buys 4 more.', 'What is 12 + 7?', 'A train leaves at 9.']
    tok.padding_side = 'left'
    batch = tok(prompts, return_tensors='pt', padding=True)                   # (3, P) left-padded
    one = tok(prompts[0], return_tensors='pt')['input_ids']
    ref = plain.generate(**batch, max_new_tokens=40, do_sample=False)
    eos = int(ref[1, batch['input_ids'].shape[1] + 6])                        # a token the model produces mid-way
    asks = {f'max_new_tokens={n}': (dict(**batch), dict(max_new_tokens=n)) for n in (1, 5, 17, 40)}
    asks |= {'eos int': (dict(**batch), dict(max_new_tokens=40, eos_token_id=eos)),
             'eos list': (dict(**batch), dict(max_new_tokens=40, eos_token_id=[eos, int(ref[0, -1])])),
             'no attention_mask': ((one,), dict(max_new_tokens=24)), 'max_length': (dict(**batch), dict(max_length=batch['input_ids'].shape[1] + 9)),
             'generation_config': (dict(**batch), dict(generation_config=GenerationConfig(max_new_tokens=12, pad_token_id=tok.pad_token_id)))}
    res = {}
    for name, (args, kw) in asks.items():
        a, b = (fast.generate(*args, **kw) if isinstance(args, tuple) else fast.generate(**args, **kw)), \
               (plain.generate(*args, **kw, do_sample=False) if isinstance(args, tuple) else plain.generate(**args, **kw, do_sample=False))
        res[name] = (a.tolist(), b.tolist(), fast.mtp_stats.tokens_per_pass, str(fast.mtp_stats))
    return res, batch

for name, folder in folders.items():
    if name == 'six': continue
    fast = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    plain = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    r, batch = calls(fast, plain, tok)
    r['bound by transformers'] = type(fast.generate).__name__, 'generate' in plain.__dict__
    torch.manual_seed(0); a = fast.generate(**batch, max_new_tokens=20, do_sample=True, temperature=0.8).tolist()
    torch.manual_seed(0); b = fast.generate(**batch, max_new_tokens=20, do_sample=True, temperature=0.8).tolist()
    r['seeded sampling'] = a == b, len(a[0]) > batch['input_ids'].shape[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        beams = fast.generate(**batch, max_new_tokens=8, num_beams=2).tolist()
    r['beams'] = beams == plain.generate(**batch, max_new_tokens=8, num_beams=2).tolist(), [str(w.message) for w in caught], fast.mtp_stats
    r['custom_generate='] = (plain.generate(**batch, max_new_tokens=12, custom_generate=folder, trust_remote_code=True).tolist(),
                             plain.generate(**batch, max_new_tokens=12, do_sample=False).tolist())
    out[name] = r

# sampling: the counts of 3-token continuations against their exact probability under the model's own sampling
fast = AutoModelForCausalLM.from_pretrained(folders['six'], trust_remote_code=True)
prompt, n, N, T = json.loads(sys.argv[3])
def exact(temperature):
    "P(next n tokens) under ancestral sampling at `temperature` (float32 logits, as generate samples), by enumeration."
    probs = {(): 1.0}
    with torch.no_grad():
        for _ in range(n):
            seqs = list(probs)
            dist = (fast(torch.tensor([prompt + list(s) for s in seqs])).logits[:, -1].float() / temperature).softmax(-1)
            probs = {s + (v,): probs[s] * float(d[v]) for s, d in zip(seqs, dist) for v in range(d.shape[0])}
    return probs
torch.manual_seed(0)
rows = fast.generate(torch.tensor([prompt] * N), max_new_tokens=n, do_sample=True, temperature=T, top_k=0)[:, len(prompt):].tolist()
counts = {}
for r in rows: counts[str(tuple(r))] = counts.get(str(tuple(r)), 0) + 1
out['six'] = dict(counts=counts, exact={str(k): v for k, v in exact(T).items()}, wrong={str(k): v for k, v in exact(1.25 * T).items()},
                  tokens_per_pass=fast.mtp_stats.tokens_per_pass)
print('RESULT ' + json.dumps(out, default=str))
'''

@pytest.fixture(scope='module')
def exported(trunk, tmp_path_factory):
    "Exported folders of every design (float32 and float64) and the 6-token one; what a fresh process without mtp_nb made of them."
    root = tmp_path_factory.mktemp('export')
    echo = echo_trunk(trunk, root)
    folders = {name: export(heads_folder(echo, root, design, noise, name), root/name, dtype=dtype)[0] for name, (design, dtype, noise) in DESIGNS.items()}
    folders['six'] = six_token_folder(root)
    env = {**offline_env(root), 'HF_HOME': str(root/'hf'), 'HF_MODULES_CACHE': str(root/'hf'/'modules')}   # remote code cached here only
    r = subprocess.run([sys.executable, '-I', '-S', '-c', SCRIPT, sysconfig.get_paths()['purelib'],
                        json.dumps({k: str(v) for k, v in folders.items()}), json.dumps([PROMPT, N_NEW, SAMPLES, 0.9])],
                       capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return folders, json.loads(r.stdout.split('RESULT ')[-1]), r.stderr

def test_the_folder_needs_no_mtp_nb(exported):
    folders, out, _ = exported
    assert out['mtp_nb importable'] is False
    for name in DESIGNS:
        assert (folders[name]/GENERATE_FILE).read_text() == Path(hubgen.__file__).read_text()   # generated: the package's module as it is
    assert 'mtp_nb' not in {l.split()[1].split('.')[0] for l in generate_source().splitlines() if l.startswith(('import ', 'from '))}

@pytest.mark.parametrize('name', DESIGNS)
def test_greedy_is_token_for_token_plain_generate(exported, name):
    "Left-padded batches, cut points 1..40, EOS (an id or a list), no mask, max_length, a GenerationConfig: the tokens of plain greedy generate."
    _, out, _ = exported
    r = out[name]
    assert r['bound by transformers'] == ['partial', False]                 # trust_remote_code installed it; the plain load did not
    cases = [k for k in r if k.startswith(('max_new', 'eos', 'no attention', 'max_length', 'generation_config'))]
    assert len(cases) == 9
    for case in cases:
        fast, plain, per_pass, _ = r[case]
        assert fast == plain, (name, case)
    assert r['custom_generate='][0] == r['custom_generate='][1]            # HF's other hook runs the same file
    assert any(r[k][0] != r['max_new_tokens=40'][0] for k in ('eos int', 'eos list'))   # EOS did end rows early

def test_tokens_per_pass_are_reported(exported):
    _, out, _ = exported
    per_pass = {name: out[name]['max_new_tokens=40'][2] for name in DESIGNS}
    assert all(1.5 < v < 4 for v in per_pass.values()), per_pass           # drafts kept, and some rejected
    assert 'tokens per verification pass (at most 4); drafts kept by position:' in out['layer-float32']['max_new_tokens=40'][3]

@pytest.mark.parametrize('name', DESIGNS)
def test_sampling_seeded_and_unserved_options_fall_back(exported, name):
    _, out, _ = exported
    r = out[name]
    assert r['seeded sampling'] == [True, True]                              # torch.manual_seed before the call: the same draws
    same, caught, stats = r['beams']
    assert same and stats is None
    assert caught == ["num_beams: not served by the draft heads; decoding with the model's plain generate (no speed-up)"]

def test_sampled_tokens_follow_the_models_distribution(exported):
    """Pearson's chi-square of 4000 seeded continuations (3 tokens) against their exact probability under the model's own
    sampling (temperature 0.9), bins of fewer than 5 expected merged: below the 0.001 quantile (Wilson-Hilferty), so a correct
    sampler fails one seed in a thousand and this seed is fixed; the same counts against temperature 1.125 (a wrong
    distribution) land well above its own threshold: the test sees an error of that size."""
    _, out, _ = exported
    six = out['six']
    def chi_square(exact):
        big = [s for s, p in exact.items() if p * SAMPLES >= 5]
        pairs = [(six['counts'].get(s, 0), exact[s] * SAMPLES) for s in big]
        pairs.append((SAMPLES - sum(six['counts'].get(s, 0) for s in big), SAMPLES * (1 - sum(exact[s] for s in big))))
        pairs = [(o, e) for o, e in pairs if e > 0]
        df = len(pairs) - 1
        return sum((o - e) ** 2 / e for o, e in pairs), df * (1 - 2 / (9 * df) + 3.090 * (2 / (9 * df)) ** 0.5) ** 3
    chi, limit = chi_square(six['exact'])
    wrong, wrong_limit = chi_square(six['wrong'])
    assert chi < limit and wrong > 1.5 * wrong_limit, (chi, limit, wrong, wrong_limit)
    assert six['tokens_per_pass'] > 1.2                                      # drafts were kept, and some rejected: both paths ran

def test_without_remote_code_the_card_says_how(exported):
    "Loaded plainly the folder generates as the next-token model (above); its card and the heads' JSON say how to enable the heads."
    folders, _, _ = exported
    card = (folders['layer-float32']/'README.md').read_text()
    assert 'from_pretrained(path, trust_remote_code=True)' in card and 'Without it this is a plain llama model' in card
    assert 'trust_remote_code=True' in json.loads((folders['layer-float32']/hubgen.HEADS_JSON).read_text())['usage']

def test_bad_input_is_one_line(trunk, tmp_path):
    refused(run_cmd('mtp_export', tmp_path/'nope', tmp_path/'out', cwd=tmp_path), 'mtp_export',
            'is nothing (no such path): pass a finished run folder (mtp_train) or a heads folder')
    heads = heads_folder(trunk, tmp_path, 'layer')
    (tmp_path/'full').mkdir(); (tmp_path/'full'/'x').write_text('x')
    one = MTPModel(load_trunk(trunk, tokenizer=False)[0], 1).save_pretrained(tmp_path/'one')
    cases = [((heads, tmp_path/'full'), 'is a folder of none of the kinds mtp_nb reads: export into a new or empty folder'),
             ((trunk, tmp_path/'o1'), 'is a model folder (an HF config.json and weights): pass a finished run folder'),
             ((heads, tmp_path/'o2', '--measure', -1), '--measure must be a whole number >= 0, got -1'),
             ((heads, tmp_path/'o3', '--threads', 0), '--threads must be a whole number >= 1, got 0'),
             ((heads, tmp_path/'o4', '--dtype', 'int8'), "unknown dtype 'int8'"),
             ((one, tmp_path/'o5'), 'this model has 1 head: nothing drafts')]
    for args, message in cases: refused(run_main('mtp_export', *args, cwd=tmp_path), 'mtp_export', message)
    assert not any((tmp_path/f'o{i}').exists() for i in range(1, 6))
