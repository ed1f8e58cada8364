"Consistency and per-head metrics of `mtp_nb.analysis` on hand-built predictions and tiny models."
import copy, math
import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM
from mtp_nb.analysis import (KINDS, accuracy_by_agreement, align_to_target, analyze, consistency, evaluate,
                             format_tables, head_metrics, head_outputs, ngram_metrics, pair_agreement, score_logits,
                             token_kind)
from mtp_nb.heads import MTPModel
from mtp_nb.trunk import bigram_metrics, next_token_metrics, train_tokenizer
from mtp_nb.data import reasoning_dataset, tokenize_dataset


def onehot_logits(guesses:torch.Tensor, V:int)->torch.Tensor:
    "(B, T) guesses -> (B, T, V) logits sure of them."
    return torch.nn.functional.one_hot(guesses.clamp(min=0), V).float() * 30 - 15


def test_alignment_moves_each_guess_to_the_token_it_predicts():
    B, T, K = 2, 7, 4
    code = (100 * torch.arange(1, K + 1)[None, None] + torch.arange(T)[None, :, None]).expand(B, T, K).clone()
    aligned, valid = align_to_target(code, torch.ones(B, T, dtype=torch.long))
    for j in range(T):
        for k in range(1, K + 1):
            assert bool(valid[0, j, k - 1]) == (j - k >= 0)
            if j - k >= 0: assert aligned[0, j, k - 1] == 100 * k + (j - k)


def test_agreement_counts_by_hand():
    x = torch.tensor([[5, 6, 7, 8, 9]])
    # head 1 guesses tokens 1..4 as 6 7 0 9, head 2 guesses tokens 2..4 as 7 1 0
    logits = [onehot_logits(torch.tensor([[6, 7, 0, 9, 0]]), 10), onehot_logits(torch.tensor([[7, 1, 0, 0, 0]]), 10)]
    out = score_logits(logits, x)
    top1 = out.top[..., 0]                                                # (B, T, K) from the logits
    p = pair_agreement(*align_to_target(top1, torch.ones_like(x)), x, 1, 2)
    assert p['n'] == 3 and p['agree'] == pytest.approx(1 / 3)
    assert p['acc_agree'] == 1.0                                          # token 2: both say 7
    assert p['acc_a_disagree'] == 0.5 and p['acc_b_disagree'] == 0.0     # token 4: head 1 right; token 3: both wrong
    c = consistency(top1, x)
    assert c['pairs'] == [dict(kind='all', **p)]


def test_padding_is_ignored():
    x = torch.tensor([[5, 6, 7, 8, 9]])
    top1 = torch.tensor([[[6, 7], [7, 1], [0, 0], [9, 3], [4, 4]]])
    alone = consistency(top1, x)
    xp = torch.cat([x, torch.zeros(1, 4, dtype=torch.long)], 1)          # 4 padding tokens
    top1p = torch.cat([top1, torch.full((1, 4, 2), 0)], 1)               # guesses "pad" everywhere at padding
    maskp = torch.tensor([[1] * 5 + [0] * 4])
    for junk in (0, 5, 9):                                                # whatever sits in the padding
        assert consistency(top1p.masked_fill(maskp[..., None] == 0, junk), xp, maskp) == alone
    # and a batch of the padded row and a full row: counts add up
    both = consistency(torch.cat([top1p, top1p]), torch.cat([xp, xp]), torch.cat([maskp, maskp]))
    assert both['pairs'][0]['n'] == 2 * alone['pairs'][0]['n']
    assert both['pairs'][0]['agree'] == alone['pairs'][0]['agree']


def test_padding_ignored_in_head_metrics():
    V = 6
    x = torch.tensor([[1, 2, 3, 4]])
    guesses = torch.tensor([[2, 3, 0, 0]])                                 # head 1: right at t=0, 1; wrong at t=2
    short = head_metrics(score_logits([onehot_logits(guesses, V)], x))
    xp, gp = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], 1), torch.cat([guesses, torch.zeros(1, 3, dtype=torch.long)], 1)
    padded = head_metrics(score_logits([onehot_logits(gp, V)], xp, (xp > 0).long()))
    assert padded == short and short[0]['n_tokens'] == 3 and short[0]['top1'] == pytest.approx(2 / 3)


def test_a_head_still_guessing_the_next_token_is_caught():
    x = torch.tensor([[1, 2, 3, 4, 5, 6]])
    next_tok = torch.cat([x[:, 1:], x[:, -1:]], 1)                        # (B, T) token t+1 (last one unscored anyway)
    out = score_logits([onehot_logits(next_tok, 8), onehot_logits(next_tok, 8)], x)
    h1, h2 = head_metrics(out)
    assert h1['top1'] == 1.0 and h1['guesses_next'] == 1.0
    assert h2['top1'] == 0.0 and h2['guesses_next'] == 1.0 and h2['n_tokens'] == 4


def test_accuracy_by_agreement():
    top1 = torch.tensor([[[1, 2, 9], [2, 9, 9], [9, 9, 9], [3, 9, 9], [9, 9, 9]]])
    x = torch.tensor([[0, 1, 2, 3, 9]])
    rows = {(r['k'], r['agreeing']): (r['n'], r['acc']) for r in accuracy_by_agreement(*align_to_target(top1, torch.ones_like(x)), x)}
    assert rows[(1, 0)] == (1, 0.0) and rows[(1, 2)] == (1, 0.0)
    assert rows[(3, 1)] == (1, 1.0) and rows[(3, 2)] == (1, 0.0) and rows[(3, 0)] == (0, None)


def test_token_kinds():
    assert [token_kind(t) for t in (' 7', ' -', ' =', ' Tom', '<think>', '\n', '?')] == \
        ['digit', 'operator', 'operator', 'word', 'marker', 'marker', 'other']
    assert set(KINDS) == {'digit', 'operator', 'word', 'marker', 'other'}


def test_ngram_is_the_bigram_table_at_k1_and_exact_on_a_cycle():
    cyc = Dataset.from_dict({'input_ids': [[1, 2, 3] * 4]})
    for k in (1, 2, 3, 4): assert ngram_metrics(cyc, cyc, k, 5)['top1'] == 1.0
    # ties are broken towards the lower id, as torch.argmax does in bigram_metrics
    ties = Dataset.from_dict({'input_ids': [[1, 3, 1, 2, 1, 4, 0, 2]]})
    got, ref = ngram_metrics(ties, ties, 1, 5), bigram_metrics(ties, ties, 5)
    assert got['top1'] == pytest.approx(ref['accuracy']) and math.exp(got['loss']) == pytest.approx(ref['perplexity'], rel=1e-5)


@pytest.fixture(scope='module')
def tiny_setup():
    data = reasoning_dataset(n_train=60, n_pretrain=200, n_eval=20, seed=3)
    tok = train_tokenizer(data['pretrain']['text'], vocab_size=400)
    train_ds, eval_ds = (tokenize_dataset(data[s], tok) for s in ('train', 'eval'))
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2))
    return tok, train_ds, eval_ds, base


def test_untouched_heads_are_the_base_model(tiny_setup):
    tok, train_ds, eval_ds, base = tiny_setup
    want = next_token_metrics(base, eval_ds, tok.pad_token_id)['accuracy']
    model = MTPModel(copy.deepcopy(base), n_heads=3)
    r = evaluate(model, eval_ds, tok.pad_token_id, train_ds=train_ds, base=copy.deepcopy(model), batch_size=7)
    assert r['heads'][0]['top1'] == pytest.approx(want)
    assert r['heads'] == r['untrained'] and r['next_token']['change'] == 0.0
    assert [h['n_tokens'] for h in r['heads']] == [h['n_tokens'] for h in r['ngram']]


def test_batch_size_does_not_change_the_outputs(tiny_setup):
    tok, _, eval_ds, base = tiny_setup
    model = MTPModel(copy.deepcopy(base), n_heads=2)
    a, b = head_outputs(model, eval_ds, tok.pad_token_id, batch_size=3), head_outputs(model, eval_ds, tok.pad_token_id, batch_size=20)
    assert torch.equal(a.top, b.top) and torch.equal(a.input_ids, b.input_ids)
    torch.testing.assert_close(a.nll, b.nll, atol=1e-5, rtol=1e-5)


def test_analyze_report_and_tables(tiny_setup):
    tok, train_ds, eval_ds, base = tiny_setup
    model = MTPModel(copy.deepcopy(base), n_heads=3)
    with torch.no_grad(): model.heads[1].mlp.down_proj.weight.mul_(3)    # head 2 now differs from the base
    r = analyze(model, tok, eval_ds, train_ds, base=MTPModel(copy.deepcopy(base), n_heads=3))
    assert r['heads'][0] == r['untrained'][0] and r['heads'][1] != r['untrained'][1]
    kinds = {p['kind'] for p in r['consistency']['pairs']}
    assert kinds == {'all', *KINDS}
    split = sum(p['n'] for p in r['consistency']['pairs'] if p['kind'] != 'all' and (p['a'], p['b']) == (1, 2))
    assert split == next(p['n'] for p in r['consistency']['pairs'] if p['kind'] == 'all' and (p['a'], p['b']) == (1, 2))
    text = format_tables(r)
    assert '| 3 | t+3 |' in text and '| 1 & 2 |' in text and 'Next-token (head 1) top-1' in text
