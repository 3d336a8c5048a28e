"""Checks for exercise 9 (exercises/e09_weight_tying.py): a tied gpt.GPTLanguageModel."""

import torch

import gpt
from data import get_batch

from .common import Hint, expect, load, same, shakespeare_ids

ex = load("e09_weight_tying")

SIZES = dict(n_embd=32, block_size=16, n_head=2, n_layer=1, dropout=0.0)

ANSWER = "model.lm_head.weight = model.token_embedding_table.weight; return model"
HINTS = {"tie_weights": Hint(
    "Both matrices are (vocab_size, n_embd). Tied means one Parameter object that both modules hold, not two "
    "with equal values: what happens to a copy at the first optimizer step?",
    "Assigning an nn.Parameter to a module's attribute registers it there: `module.weight = other.weight`.",
    ANSWER)}
COPIED = Hint(
    "lm_head.weight holds the embedding's values but is a separate tensor: a copy drifts apart at the first "
    "optimizer step.", "Assign the Parameter object itself, no `.clone()`, `.copy_()` or `nn.Parameter(...)`.",
    ANSWER)


def diagnosis(model):
    """COPIED when lm_head holds a copy of the embedding, else the general hint."""
    head, emb = model.lm_head.weight, model.token_embedding_table.weight
    return COPIED if head is not emb and head.shape == emb.shape and torch.equal(head, emb) else HINTS["tie_weights"]


def count(model):
    return sum(p.numel() for p in model.parameters())  # a shared Parameter is counted once


def tied_model(vocab_size, seed=0):
    torch.manual_seed(seed)
    model = gpt.GPTLanguageModel(vocab_size, **SIZES)
    tied = ex.tie_weights(model)
    expect(tied is not None, "tie_weights should return the model (the same object it was given).",
           HINTS["tie_weights"])
    return tied


def test_weight_tying_shares_one_parameter():
    V, C = 65, SIZES["n_embd"]
    untied = count(gpt.GPTLanguageModel(V, **SIZES))
    model = tied_model(V)
    emb, head = model.token_embedding_table.weight, model.lm_head.weight
    expect(head is emb, "model.lm_head.weight should be the very same Parameter as "
           "model.token_embedding_table.weight.", diagnosis(model))
    expect(count(model) == untied - V * C,
           f"a tied model has {untied - V * C:,} parameters ({untied:,} untied, less one {V} x {C} matrix); "
           f"yours has {count(model):,}.", diagnosis(model))


def test_weight_tying_shared_matrix_gets_both_gradients():
    ids, tok = shakespeare_ids()
    V = tok.vocab_size
    model = tied_model(V)
    hint = diagnosis(model)  # before training: a copy starts equal to the embedding
    twin = gpt.GPTLanguageModel(V, **SIZES)  # untied, with the tied model's values in both places
    twin.load_state_dict(model.state_dict())
    xb, yb = get_batch(ids, 4, SIZES["block_size"], generator=torch.Generator().manual_seed(0))
    model(xb, yb)[1].backward()
    twin(xb, yb)[1].backward()
    both = twin.token_embedding_table.weight.grad + twin.lm_head.weight.grad  # (V, C): input use + output use
    same(model.token_embedding_table.weight.grad, both, "the shared matrix's gradient (one matrix used twice gets "
         "the sum of the gradients of both uses, as an untied twin shows)", hint)


def test_weight_tying_tied_gpt_still_learns():
    ids, tok = shakespeare_ids()
    model = tied_model(tok.vocab_size)
    hint = diagnosis(model)  # before training: a copy starts equal to the embedding
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batches = torch.Generator().manual_seed(0)
    held_out = get_batch(ids, 64, SIZES["block_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(*held_out)[1].item()
    for _ in range(150):
        xb, yb = get_batch(ids, 16, SIZES["block_size"], generator=batches)
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = model(*held_out)[1].item()
    expect(model.lm_head.weight is model.token_embedding_table.weight,
           "after training, lm_head.weight and the embedding are no longer one Parameter.", hint)
    expect(after < before - 0.8,
           f"150 steps took the tied model's loss from {before:.2f} to {after:.2f} nats; expected a drop of at "
           f"least 0.8. Is the tied matrix (vocab_size, n_embd), and does the optimizer see it?", hint)
