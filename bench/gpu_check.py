"""The real-size check on a CUDA machine, in one call of under 8 minutes.

The 1.5B shape this project grew from (configs/deepseek-r1-distill-qwen-1.5b), random weights in bfloat16:
~20 optimizer steps with the experiment's settings (4 heads, T = 2048, the micro-batch `mtp_plan` chooses for
this card, the trunk trained after a short freeze, checkpointed), tokens/s and `torch.cuda.max_memory_allocated`
against the plan; then self-speculative decoding against HF `generate` on the same GPU.

    python bench/gpu_check.py            # on a CUDA machine, from the repository root
    python bench/gpu_check.py --smoke    # the same code on a tiny shape on the CPU (what the test runs)

With random weights the heads' drafts are rarely accepted, so the decoding rows measure the cost of a
verification pass against a plain cached step, not a speed-up; the tokens must still be identical (or the
near-tie flips of bfloat16 are counted).
"""
import argparse, json, statistics, sys, time
import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from mtp_nb.config import MTPConfig
from mtp_nb.heads import MTPModel, next_token_model
from mtp_nb.plan import GiB, largest_micro_batch, plan_step
from mtp_nb.trunk import trunk_config
from mtp_nb.schedule import Schedule
from mtp_nb.speculative import hf_greedy, speculative_generate
from mtp_nb.step import make_optimizer, train_step

SMOKE = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=256)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--trunk', default='configs/deepseek-r1-distill-qwen-1.5b', help='config folder or hub id of the shape')
    p.add_argument('--steps', type=int, default=20, help='optimizer steps')
    p.add_argument('--freeze_steps', type=int, default=5, help='steps with the trunk frozen before it trains')
    p.add_argument('--seq_len', type=int, default=2048, help='tokens per row')
    p.add_argument('--new_tokens', type=int, default=128, help='tokens to decode')
    p.add_argument('--smoke', action='store_true', help='a tiny shape on the CPU: the code path, not the numbers')
    return p.parse_args(argv)


def setting(args, device):
    "Config, micro-batch, the run's settings and the plan's keywords."
    config = SMOKE if args.smoke else trunk_config(args.trunk)
    plan_kw = dict(n_heads=4, dtype='bfloat16', checkpoint_trunk=True, train_trunk=True,
                   device='cuda' if device.type == 'cuda' else 'cpu')
    card_gb = torch.cuda.get_device_properties(device).total_memory / 1e9 if device.type == 'cuda' else 1.08  # smoke: a tiny card
    micro = largest_micro_batch(config, card_gb, args.seq_len, **plan_kw)
    if micro == 0: sys.exit(f"the plan says one row of {args.seq_len} tokens does not fit this {card_gb:.0f} GB card")
    cfg = MTPConfig(dtype='bfloat16', checkpoint_trunk=True, lr=1e-4, trunk_lr=1e-5, freeze_steps=args.freeze_steps,
                    lr_warmup_steps=2, trunk_ramp_steps=2, batch_size=micro, micro_batch_size=micro)
    return config, micro, cfg, plan_kw, card_gb


def build(config, device):
    "The MTP model on random weights, as a run holds it: bf16 trunk, float32 heads and trunk layers, checkpointed."
    torch.manual_seed(0)
    with torch.device(device): base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model = MTPModel(base, 4)
    model.upcast_trunk(); model.set_trunk_checkpointing(True)
    return model


def train(model, cfg, args, micro, device)->dict:
    "Timed optimizer steps; tokens/s while frozen and once the trunk trains; the peak allocated memory."
    optimizer = make_optimizer(model, cfg)
    schedule = Schedule(args.steps, lr=cfg.lr, trunk_lr=cfg.trunk_lr, freeze_steps=cfg.freeze_steps,
                        lr_warmup_steps=cfg.lr_warmup_steps, trunk_ramp_steps=cfg.trunk_ramp_steps)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device)
    times = {True: [], False: []}
    for step in range(args.steps):
        x = torch.randint(0, model.config.vocab_size, (micro, args.seq_len), device=device)
        lrs = schedule(step)
        sync(); t0 = time.perf_counter()
        train_step(model, optimizer, [dict(input_ids=x, attention_mask=torch.ones_like(x))], lrs, cfg)
        sync(); times[lrs.trunk_trainable].append(time.perf_counter() - t0)
        print(f"step {step + 1}/{args.steps}: {times[lrs.trunk_trainable][-1]:.2f} s, trunk {'trained' if lrs.trunk_trainable else 'frozen'}", flush=True)
    rate = lambda ts: micro * args.seq_len / statistics.median(ts[1:] or ts) if ts else float('nan')  # first step: warm-up
    peak = torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else 0
    return dict(frozen_tok_s=rate(times[False]), trained_tok_s=rate(times[True]), peak=peak)


def decode(model, args, device)->dict:
    "Self-speculative decoding against HF `generate`, one prompt, the whole model in bfloat16."
    model.set_trunk_checkpointing(False)
    model = model.to(torch.bfloat16).eval()
    hf = next_token_model(model)
    prompt = torch.randint(0, model.config.vocab_size, (1, 64), device=device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    out = {}
    with torch.no_grad():
        for name, run in (('HF generate', lambda: hf_greedy(hf, prompt, args.new_tokens)),
                          ('self-speculative, 4 heads', lambda: speculative_generate(model, prompt, None, args.new_tokens)[0][0])):
            run(); sync(); t0 = time.perf_counter()                       # the first run warms the kernels up
            tokens = run(); sync()
            out[name] = (tokens, time.perf_counter() - t0)
    (ref, t_ref), (spec, t_spec) = out.values()
    same = sum(a == b for a, b in zip(ref, spec))
    first_diff = next((i for i, (a, b) in enumerate(zip(ref, spec)) if a != b), None)
    return dict(hf_tok_s=len(ref) / t_ref, spec_tok_s=len(spec) / t_spec, identical=ref == spec,
                first_difference=first_diff, agreeing=same, tokens=len(ref))


def main(argv=None):
    args = parse(argv)
    device = torch.device('cuda' if torch.cuda.is_available() and not args.smoke else 'cpu')
    if device.type != 'cuda' and not args.smoke: sys.exit("no CUDA device here: run with --smoke to check the code path on the CPU")
    t0 = time.time()
    config, micro, cfg, plan_kw, card_gb = setting(args, device)
    planned = plan_step(config, micro, args.seq_len, **plan_kw)
    print(f"{config.model_type} shape, B={micro} (the plan's largest for {card_gb:.0f} GB) T={args.seq_len}, 4 heads, bf16 + float32 masters, "
          f"trunk checkpointed; planned {planned.total / GiB:.2f} GiB", flush=True)
    model = build(config, device)
    tr = train(model, cfg, args, micro, device)
    dec = decode(model, args, device)
    rows = [('micro-batch (planned for the card)', f"{micro}"),
            ('tokens/s, trunk frozen', f"{tr['frozen_tok_s']:.0f}"), ('tokens/s, trunk trained', f"{tr['trained_tok_s']:.0f}"),
            ('planned peak GiB', f"{planned.total / GiB:.2f}"),
            ('max_memory_allocated GiB', f"{tr['peak'] / GiB:.2f}" if tr['peak'] else 'n/a (CPU)'),
            ('plan vs measured', f"{planned.total / tr['peak'] - 1:+.1%}" if tr['peak'] else 'n/a (CPU)'),
            ('HF generate tokens/s (batch 1, bf16)', f"{dec['hf_tok_s']:.1f}"),
            ('self-speculative tokens/s', f"{dec['spec_tok_s']:.1f}"),
            ('tokens identical to HF generate', f"{dec['identical']} ({dec['agreeing']}/{dec['tokens']} agree, first difference at {dec['first_difference']})")]
    print('\n| GPU check | value |\n|---|---:|\n' + '\n'.join(f"| {k} | {v} |" for k, v in rows))
    print(f"\n{json.dumps(dict(train=tr, decode=dec, micro=micro, planned=planned.total))}\n{time.time() - t0:.0f} s")


if __name__ == '__main__': main()
