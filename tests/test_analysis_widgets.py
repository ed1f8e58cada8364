"The scaling explorer's cache and sliders (`mtp_nb.widgets`), driven without a browser."
import copy
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from mtp_nb.backward import count_targets, mtp_backward
from mtp_nb.heads import MTPModel
from mtp_nb.widgets import scaling_explorer, trunk_gradients, trunk_update


def tiny(n_heads=4, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=53, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2)
    return MTPModel(LlamaForCausalLM(cfg).double(), n_heads)


@pytest.fixture(scope='module')
def setup():
    m = tiny()
    torch.manual_seed(1)
    x = torch.randint(0, 53, (3, 9)); mask = torch.ones_like(x); mask[2, 5:] = 0
    return m, x, mask


def step_grad(m, x, mask, w, s):
    m = copy.deepcopy(m); m.set_trunk_trainable(True)
    mtp_backward(m, x, mask, count_targets([dict(input_ids=x, attention_mask=mask)], m.n_heads), w, s)
    return torch.cat([p.grad.flatten() for p in m.trunk_parameters()])


@pytest.mark.parametrize('w,s', [([1, 1, 1, 1], [1, .1, .1, .1]), ([.5, 2, 0, 1], [1, 0, .3, 1]), ([1, 1, 1, 1], [1, 1, 1, 1])])
def test_cache_gives_the_training_steps_trunk_gradient(setup, w, s):
    m, x, mask = setup
    state = trunk_update(trunk_gradients(m, x, mask), s, w)
    g, g1 = step_grad(m, x, mask, w, s), step_grad(m, x, mask, [1, 0, 0, 0], [1, 1, 1, 1])
    assert state['trunk_norm'] == pytest.approx(g.norm().item(), rel=1e-8)
    assert state['cos_next_token'] == pytest.approx((g @ g1 / (g.norm() * g1.norm())).item(), rel=1e-8)
    for k in range(4):                                                     # each head alone
        alone = [wk if i == k else 0 for i, wk in enumerate(w)]
        assert state['head_norms'][k] == pytest.approx(step_grad(m, x, mask, alone, s).norm().item(), rel=1e-8, abs=1e-14)


def test_cache_leaves_the_model_alone(setup):
    m, x, mask = setup
    m.set_trunk_trainable(False)
    trunk_gradients(m, x, mask)
    assert not any(p.requires_grad for p in m.trunk_parameters())
    assert all(p.grad is None for p in m.parameters())


def test_sliders_recompute_the_state(setup):
    m, x, mask = setup
    ex = scaling_explorer(m, dict(input_ids=x, attention_mask=mask), per_head=True, scale=0.1)
    cache = ex.grads
    assert ex.state == trunk_update(cache, [1, .1, .1, .1])
    ex.scale.value = 0.5
    assert [s.value for s in ex.head_scales] == [0.5] * 3
    assert ex.state == trunk_update(cache, [1, .5, .5, .5])
    ex.head_scales[2].value = 0.0
    ex.weights[0].value = 2.0
    assert ex.state == trunk_update(cache, [1, .5, .5, 0.0], [2.0, 1, 1, 1])
    assert ex.state['head_norms'][3] == 0.0
    ex.scale.value = 0.0                                                   # far heads silent: the update is head 1's
    assert ex.state['cos_next_token'] == pytest.approx(1.0)
    assert '+1.000' in ex.table.value


def test_train_button_uses_the_current_setting(setup):
    m, x, mask = setup
    seen = []
    ex = scaling_explorer(m, dict(input_ids=x), train_fn=lambda s, w: seen.append((s, w)) or [0.9, 0.5, 0.3, 0.2])
    ex.scale.value = 0.3
    ex.weights[3].value = 0.5
    ex.button.click()
    assert seen == [([1.0, 0.3, 0.3, 0.3], [1.0, 1.0, 1.0, 0.5])]
    assert '90.0%' in ex.trained.value and ex.last_run == [0.9, 0.5, 0.3, 0.2]


def test_wrong_lengths_are_refused(setup):
    m, x, mask = setup
    with pytest.raises(ValueError, match='need 4 scales'):
        trunk_update(trunk_gradients(m, x, mask), [1, .1])
