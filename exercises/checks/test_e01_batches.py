"""Checks for exercise 1 (exercises/e01_batches.py): batches as data.get_batch makes them."""

import torch

from data import get_batch

from .common import expect, load, same, shakespeare_ids

ex = load("e01_batches")

BATCH, BLOCK = 4, 8


def test_batches_make_batch_matches_get_batch():
    ids, _ = shakespeare_ids()
    ix = torch.randint(len(ids) - BLOCK, (BATCH,), generator=torch.Generator().manual_seed(1))
    x, y = ex.make_batch(ids, ix, BLOCK)
    want_x, want_y = get_batch(ids, BATCH, BLOCK, generator=torch.Generator().manual_seed(1))  # draws the same ix
    same(x, want_x, "x", "Row b should be data[ix[b] : ix[b] + block_size]: B rows of block_size ids.")
    if isinstance(y, torch.Tensor) and torch.equal(y, x):
        expect(False, "y equals x: the targets are the same window moved one to the right, "
                      "so that y[b, t] is the token that comes after x[b, t].")
    same(y, want_y, "y", "Row b should be data[ix[b] + 1 : ix[b] + block_size + 1], one position right of x's.")


def test_batches_one_row_holds_block_size_examples():
    ids, tok = shakespeare_ids()
    x_row, y_row = ids[:BLOCK], ids[1 : BLOCK + 1]
    pairs = ex.examples_in_row(x_row, y_row)
    expect(isinstance(pairs, list) and len(pairs) == BLOCK,
           f"a row of {BLOCK} tokens holds {BLOCK} examples (one per prefix), got "
           f"{len(pairs) if isinstance(pairs, list) else type(pairs).__name__}")
    for t, pair in enumerate(pairs):
        want = (x_row[: t + 1].tolist(), y_row[t].item())
        context, target = pair
        mine = ([int(i) for i in context], int(target))  # tensors or ints: both fine
        expect(mine == want,
               f"example {t} should be (context {want[0]}, target {want[1]}): after "
               f"{tok.decode(want[0])!r} comes {tok.decode([want[1]])!r}; yours is {pair}")
