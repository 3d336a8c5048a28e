"""Checks for exercise 1 (exercises/e01_batches.py): batches as data.get_batch makes them, from the real text."""

import torch

from data import get_batch

from .common import Hint, close_to, expect, load, same, shakespeare_ids

ex = load("e01_batches")

BATCH, BLOCK = 4, 8

HINTS = {
    "make_batch": Hint(
        "Row b of x is the piece of the text that starts at position ix[b] and is block_size tokens long; row b "
        "of y is the piece one position later. Make one row first, then all B of them.",
        "Slicing, `data[i : i + block_size]`, gives one row; `torch.stack(rows)` turns B rows into (B, T).",
        "x = torch.stack([data[i : i + block_size] for i in ix]); "
        "y = torch.stack([data[i + 1 : i + block_size + 1] for i in ix])"),
    "examples_in_row": Hint(
        "A row of T tokens holds T examples: the context grows by one token each time, and its target is the "
        "token that comes after the context's last one.",
        "`x_row[: t + 1].tolist()` for the context, `y_row[t].item()` for the target, for t in range(len(x_row)).",
        "return [(x_row[: t + 1].tolist(), y_row[t].item()) for t in range(len(x_row))]"),
}
POSITIONS = Hint(
    "x holds the positions ix[b], ix[b] + 1, ... themselves, not the tokens found at those positions of the text.",
    "Index the text with the positions: `data[i : i + block_size]` (or `data[positions]`).",
    HINTS["make_batch"].answer)
NOT_SHIFTED = Hint(
    "y equals x: the targets are the same window moved one position to the right, so that y[b, t] is the "
    "token that comes after x[b, t].",
    "Start y's slice one later: `data[i + 1 : ...]`.",
    HINTS["make_batch"].answer)


def test_batches_make_batch_matches_get_batch():
    ids, _ = shakespeare_ids()  # a real text, so a token's id and its position differ
    ix = torch.randint(len(ids) - BLOCK, (BATCH,), generator=torch.Generator().manual_seed(1))
    x, y = ex.make_batch(ids, ix, BLOCK)
    want_x, want_y = get_batch(ids, BATCH, BLOCK, generator=torch.Generator().manual_seed(1))  # draws the same ix
    positions = ix[:, None] + torch.arange(BLOCK)  # (B, T)
    expect(not close_to(x, positions), "x is not the text's tokens.", POSITIONS)
    same(x, want_x, "x", HINTS["make_batch"])
    expect(not (isinstance(y, torch.Tensor) and torch.equal(y, x)), "y is x.", NOT_SHIFTED)
    expect(not close_to(y, positions + 1), "y is not the text's tokens.", POSITIONS)
    same(y, want_y, "y", HINTS["make_batch"])


def test_batches_one_row_holds_block_size_examples():
    ids, tok = shakespeare_ids()
    x_row, y_row = ids[:BLOCK], ids[1 : BLOCK + 1]
    pairs = ex.examples_in_row(x_row, y_row)
    expect(isinstance(pairs, list) and len(pairs) == BLOCK,
           f"a row of {BLOCK} tokens holds {BLOCK} examples (one per prefix), got "
           f"{len(pairs) if isinstance(pairs, list) else type(pairs).__name__}.", HINTS["examples_in_row"])
    for t, pair in enumerate(pairs):
        want = (x_row[: t + 1].tolist(), y_row[t].item())
        context, target = pair
        mine = ([int(i) for i in context], int(target))  # tensors or ints: both fine
        expect(mine == want,
               f"example {t} should be (context {want[0]}, target {want[1]}): after "
               f"{tok.decode(want[0])!r} comes {tok.decode([want[1]])!r}; yours is {pair}.", HINTS["examples_in_row"])
