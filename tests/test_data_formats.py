"""Real reasoning data through `mtp_train`, offline: a chat-format set rendered with a chat template given on the command
line, and the same traces as R1-style problem / generations / answer columns, each with bad rows and a long tail of
lengths; the filter's counts printed and saved, the completion alone scored, steps grouped by length. And the refusals
(a chat set with no template, a --max_tokens past the trunk's context), and the experiment's preset, checked offline."""
import json
from pathlib import Path
import pytest
from conftest import refused, run_cmd, run_main

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT/'configs'/'r1-experiment-1.5b.yaml'
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant: {% endif %}")
RUN = ['--n_heads', '3', '--n_eval', '0', '--eval_fraction', '0.25', '--max_tokens', '300', '--epochs', '1',
       '--batch_size', '4', '--micro_batch_size', '2', '--freeze_steps', '1', '--lr_warmup_steps', '1', '--trunk_ramp_steps', '1',
       '--log_every', '1', '--cpu']

def traces(n:int=24)->list[dict]:
    "Embedded examples as R1 writes them: the trace in think tags, then a boxed final answer; every sixth trace 10x as long."
    from mtp_nb.verify import reasoning_dataset
    ds = reasoning_dataset(n_train=n, n_eval=1, n_pretrain=0, seed=3, max_tokens=96)['train']
    out = []
    for i, e in enumerate(ds):
        final = e['answer'].split()[-1].rstrip('.')
        trace = '\n'.join([e['reasoning']] * (10 if i % 6 == 0 else 1))
        out.append(dict(problem=e['prompt'], final=final, reply=f"<think>\n{trace}\n</think>\nSo it is \\boxed{{{final}}}."))
    return out

def write_chat(path:Path)->None:
    rows = [{'messages': [dict(role='user', content=t['problem']), dict(role='assistant', content=t['reply'])], 'answer': t['final']}
            for t in traces()]
    first = rows[0]['messages']
    rows += [{'messages': [first[0], dict(first[1], content=first[1]['content'].replace('boxed{', 'boxed{9'))], 'answer': rows[0]['answer']},
             {'messages': first[:1], 'answer': '1'},                                    # no assistant turn
             {'messages': [dict(role='user', content=' '), first[1]], 'answer': '1'}, rows[1]]   # an empty turn; a repeat
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))

def write_r1(path:Path)->None:
    import datasets
    rows = [dict(problem=t['problem'], generations=[t['reply'].replace('boxed{', 'boxed{9'), t['reply']], answer=t['final'])
            for t in traces()]
    rows += [dict(problem='A problem without generations?', generations=[], answer='1'), rows[1]]
    datasets.Dataset.from_list(rows).to_parquet(path)

@pytest.mark.parametrize('form', ['chat', 'r1'])
def test_real_formats_train_end_to_end(trunk, tmp_path, form):
    if form == 'chat':
        write_chat(tmp_path/'set.jsonl'); (tmp_path/'template.jinja').write_text(TEMPLATE)
        data = ['--data', tmp_path/'set.jsonl', '--chat_template', tmp_path/'template.jinja']
    else:
        write_r1(tmp_path/'set.parquet')
        data = ['--data', tmp_path/'set.parquet', '--columns', '{"problem": "prompt", "generations": "completion", "answer": "reference"}']
    r = run_cmd('mtp_train', '--trunk', trunk, *data, *RUN, '--completion_only', 'true', '--group_by_length', 'true',
                '--run_dir', tmp_path/'run', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path/'run'/'data.json').read_text())
    # chat: 28 rows, 2 malformed, 1 wrong answer, 4 long traces, 1 repeat; r1: 1 malformed, the second generation is right
    want = dict(chat=dict(rows=28, **{'well-formed': 26, 'verified': 25}), r1=dict(rows=26, **{'well-formed': 25, 'verified': 25}))[form]
    assert {k: report[k] for k in want} == want, report
    assert report['unique'] == report['within max_tokens'] - 1 and report['within max_tokens'] < report['verified'], report
    assert report['form'] == ('chat' if form == 'chat' else 'completion') and report['scored'] == 'completion'
    assert report['used']['training'] + report['used']['held-out'] == report['unique']
    assert report['padding']['grouped by length'] <= report['padding']['random order']
    assert f"data: {tmp_path/('set.jsonl' if form == 'chat' else 'set.parquet')} (" in r.stdout and ' -> unique ' in r.stdout, r.stdout
    assert (tmp_path/'run'/'final').is_dir()

def test_chat_without_template_and_too_long_are_refused(trunk, tmp_path):
    write_chat(tmp_path/'set.jsonl')
    r = run_cmd('mtp_train', '--trunk', trunk, '--data', tmp_path/'set.jsonl', *RUN, '--run_dir', tmp_path/'run', cwd=tmp_path)
    refused(r, 'mtp_train', "holds chats, and the trunk's tokenizer has no chat template to render them: pass --chat_template")
    r = run_main('mtp_train', '--trunk', trunk, '--data', tmp_path/'set.jsonl', '--chat_template', 'chatml', *RUN,
                 '--run_dir', tmp_path/'run', cwd=tmp_path)   # the first through the script, these two in this process
    refused(r, 'mtp_train', "--chat_template 'chatml' is neither a file nor a Jinja template")
    context = json.loads((Path(trunk)/'config.json').read_text())['max_position_embeddings']
    r = run_main('mtp_train', '--trunk', trunk, *RUN, '--max_tokens', context, '--run_dir', tmp_path/'run', cwd=tmp_path)
    refused(r, 'mtp_train', f"--max_tokens {context} (+1 for EOS) is past the trunk's context of {context} tokens")
    assert not (tmp_path/'run').exists()

def test_experiment_preset_is_the_experiment():
    "The preset a user with hub access runs unchanged: checked offline (no download), with the experiment's values."
    import importlib.util
    from mtp_nb.config import read_config_file, resolve_config
    from mtp_nb.core import InputError
    if importlib.util.find_spec('bitsandbytes') is None:             # a CPU machine: the preset says what it lacks, in one line
        with pytest.raises(InputError, match=r'adamw8bit needs bitsandbytes: pip install -e "\.\[gpu\]"'): resolve_config(PRESET)
    cfg = resolve_config(PRESET, trunk_optimizer='adamw')              # every other field checked as mtp_train checks it
    assert read_config_file(PRESET)['trunk_optimizer'] == 'adamw8bit'
    assert (cfg.n_heads, cfg.epochs, cfg.lr, cfg.freeze_steps, cfg.trunk_grad_scales, cfg.n_train) == (4, 3, 1e-4, 200, [1, 0.1, 0.1, 0.1], 5000)
    assert cfg.trunk == 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B' and cfg.data == 'open-r1/OpenR1-Math-220k'
    assert cfg.columns == {'messages': 'messages', 'answer': 'reference'} and cfg.completion_only and cfg.group_by_length
    assert (cfg.dtype, cfg.checkpoint_trunk, cfg.micro_batch_size) == ('bfloat16', True, 1)
    shape = json.loads((ROOT/'configs'/'deepseek-r1-distill-qwen-1.5b'/'config.json').read_text())
    assert cfg.max_tokens < shape['max_position_embeddings']

def test_the_sharded_8b_preset_reads_offline():
    "The 8-GPU preset: the 1.5B experiment's recipe and data, sharded; every field checked as mtp_train checks it."
    from mtp_nb.config import read_config_file, resolve_config
    small, big = read_config_file(PRESET), read_config_file(ROOT/'configs'/'r1-experiment-8b-fsdp.yaml')
    recipe = ('data', 'columns', 'completion_only', 'n_train', 'n_heads', 'epochs', 'lr', 'freeze_steps', 'trunk_grad_scales', 'batch_size')
    assert {k: big[k] for k in recipe} == {k: small[k] for k in recipe}
    cfg = resolve_config(ROOT/'configs'/'r1-experiment-8b-fsdp.yaml')
    assert (cfg.trunk, cfg.sharding, cfg.trunk_optimizer, cfg.dtype, cfg.checkpoint_trunk) == \
           ('deepseek-ai/DeepSeek-R1-Distill-Llama-8B', 'fsdp', 'adamw', 'bfloat16', True)
    shape = json.loads((ROOT/'configs'/'llama-3.1-8b'/'config.json').read_text())
    assert cfg.max_tokens < shape['max_position_embeddings'] and (shape['hidden_size'], shape['num_hidden_layers']) == (4096, 32)
