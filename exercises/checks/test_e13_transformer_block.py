"""Checks for exercise 13 (exercises/e13_transformer_block.py): your block against gpt.Block, weights copied.

Every check that fails first asks which of the usual mistakes the block makes (diagnosis()): post-norm, a
missing residual, the norms swapped, and so on, so that the hint names the mistake actually made.
"""

import torch
import torch.nn as nn

import gpt

from .common import Hint, expect, load, same, which_mistake

ex = load("e13_transformer_block")

C, N_HEAD, T = 16, 2, 6

FFWD_ANSWER = ("self.net = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd), "
               "nn.Dropout(dropout)); forward: return self.net(x)")
BLOCK_ANSWER = ("self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd); "
                "self.ffwd = FeedForward(n_embd, dropout); forward: x = x + self.sa(self.ln1(x)); "
                "x = x + self.ffwd(self.ln2(x)); return x")
HINTS = {
    "FeedForward": Hint(
        "Widen, bend, narrow: each position's vector goes up to four times its width, through a non-linearity, "
        "and back, then dropout. Keep the layers in the order they run.",
        "`nn.Linear(n_embd, 4 * n_embd)`, `nn.ReLU()`, `nn.Linear(4 * n_embd, n_embd)`, `nn.Dropout(dropout)`; "
        "`nn.Sequential(...)` runs them in turn.", FFWD_ANSWER),
    "Block": Hint(
        "Two sublayers, attention then feed-forward. Each one reads a normalised copy of x and *adds* what it "
        "computes to x; x itself is never normalised or replaced inside the block.",
        "`nn.LayerNorm(n_embd)` twice, your `FeedForward(n_embd, dropout)`; in forward, `x = x + ...` twice.",
        BLOCK_ANSWER),
}


def variant(g, x, kind):
    """gpt.Block g's computation, or one of the usual mistakes, on x."""
    sa, ffwd, ln1, ln2 = g.sa, g.ffwd, g.ln1, g.ln2
    if kind == "post_norm":
        x = ln1(x + sa(x))
        return ln2(x + ffwd(x))
    if kind == "no_residual_sa":
        x = sa(ln1(x))
        return x + ffwd(ln2(x))
    if kind == "no_residual_ffwd":
        x = x + sa(ln1(x))
        return ffwd(ln2(x))
    if kind == "no_residual":
        return ffwd(ln2(sa(ln1(x))))
    if kind == "norms_swapped":
        x = x + sa(ln2(x))
        return x + ffwd(ln1(x))
    if kind == "norm_after_sublayer":
        x = x + ln1(sa(x))
        return x + ln2(ffwd(x))
    if kind == "residual_of_normed":
        h = ln1(x)
        x = h + sa(h)
        h = ln2(x)
        return h + ffwd(h)
    if kind == "ffwd_first":
        x = x + ffwd(ln2(x))
        return x + sa(ln1(x))
    raise ValueError(kind)


MISTAKES = {
    "post_norm": Hint(
        "your block is post-norm, as in the 2017 paper: layer norm after the addition, x = ln(x + sublayer(x)). "
        "gpt.py and the lecture use pre-norm: the norm goes on the sublayer's input, and x itself is never "
        "normalised inside the block.", "`x = x + self.sa(self.ln1(x))`: ln1 inside the call, not around the sum.",
        BLOCK_ANSWER),
    "no_residual_sa": Hint(
        "the attention's output replaces x instead of being added to it: the residual connection around the "
        "attention is missing.", "`x = x + self.sa(...)`, not `x = self.sa(...)`.", BLOCK_ANSWER),
    "no_residual_ffwd": Hint(
        "the feed-forward's output replaces x instead of being added to it: the residual connection around the "
        "feed-forward is missing.", "`x = x + self.ffwd(...)`, not `x = self.ffwd(...)`.", BLOCK_ANSWER),
    "no_residual": Hint(
        "both residual connections are missing: each sublayer's output replaces x instead of being added to it.",
        "`x = x + ...` for both sublayers.", BLOCK_ANSWER),
    "norms_swapped": Hint(
        "ln1 and ln2 are swapped: ln1 belongs to the attention, ln2 to the feed-forward (gpt.Block's weights are "
        "copied by name).", "`self.sa(self.ln1(x))` and `self.ffwd(self.ln2(x))`.", BLOCK_ANSWER),
    "norm_after_sublayer": Hint(
        "the norm is applied to each sublayer's output; in a pre-norm block it is applied to the sublayer's "
        "input.", "`self.sa(self.ln1(x))`, not `self.ln1(self.sa(x))`.", BLOCK_ANSWER),
    "residual_of_normed": Hint(
        "the residual adds the sublayer's output to the *normalised* x; it should be added to x itself, so the "
        "residual stream passes through the block untouched.", "`x = x + self.sa(self.ln1(x))`: keep x, "
        "do not overwrite it with ln1(x).", BLOCK_ANSWER),
    "ffwd_first": Hint(
        "the feed-forward runs before the attention: communication first, then computation.",
        "The attention line, then the feed-forward line.", BLOCK_ANSWER),
}
NO_RELU = Hint("your feed-forward has no non-linearity between its two Linear layers, so it is one linear map.",
               "`nn.ReLU()` between the two `nn.Linear`s.", FFWD_ANSWER)


def linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def copy_ffwd(mine, theirs):
    """theirs (a gpt.FeedForward)'s weights into mine, Linear by Linear in the order they were created."""
    ours, gpts = linears(mine), linears(theirs)
    shapes = [tuple(m.weight.shape) for m in ours]
    expect(len(ours) == 2 and shapes == [tuple(m.weight.shape) for m in gpts],
           f"your feed-forward's Linear weights have the shapes {shapes}; gpt.FeedForward's are "
           f"{[tuple(m.weight.shape) for m in gpts]}: n_embd -> 4 * n_embd -> n_embd.", HINTS["FeedForward"])
    with torch.no_grad():
        for a, b in zip(ours, gpts):
            a.weight.copy_(b.weight)
            expect(a.bias is not None, "your feed-forward's Linear layers should have biases (nn.Linear's default).",
                   HINTS["FeedForward"])
            a.bias.copy_(b.bias)


def a_gpt_block():
    torch.manual_seed(0)
    g = gpt.Block(n_embd=C, n_head=N_HEAD, dropout=0.0).eval()
    with torch.no_grad():  # gpt.py starts with tiny weights; bigger ones make every mistake show
        for p in g.parameters():
            p.normal_(0.0, 0.3)
    return g


def my_block_like(g):
    """The learner's Block with gpt.Block g's weights."""
    mine = ex.Block(C, N_HEAD, 0.0)
    for name in ("ln1", "ln2", "ffwd", "sa"):
        expect(isinstance(getattr(mine, name, None), nn.Module), f"your Block has no module self.{name}.",
               HINTS["Block"])
    with torch.no_grad():
        for name in ("ln1", "ln2", "sa"):
            try:
                getattr(mine, name).load_state_dict(getattr(g, name).state_dict())
                problem = None
            except RuntimeError as err:
                problem = f"gpt.Block's {name} does not fit into yours: {str(err).splitlines()[0]}"
            expect(problem is None, problem, HINTS["Block"])
    copy_ffwd(mine.ffwd, g.ffwd)
    return mine.eval()


def an_input():
    return torch.randn(2, T, C, generator=torch.Generator().manual_seed(1))  # (B, T, C)


@torch.no_grad()
def ffwd_diagnosis():
    """NO_RELU when the learner's FeedForward is two Linear layers and nothing between, else None."""
    g = a_gpt_block()
    mine = ex.FeedForward(C, 0.0).eval()
    copy_ffwd(mine, g.ffwd)
    x = an_input()
    first, second = linears(g.ffwd)
    out = mine(x)
    no_relu = isinstance(out, torch.Tensor) and out.shape == x.shape and torch.allclose(out, second(first(x)),
                                                                                         atol=1e-5)
    return NO_RELU if no_relu else None


@torch.no_grad()
def diagnosis():
    if ffwd_diagnosis():
        return NO_RELU
    g = a_gpt_block()
    x = an_input()
    out = my_block_like(g)(x)
    return which_mistake(out, [(variant(g, x, kind), hint) for kind, hint in MISTAKES.items()], atol=1e-4) or \
        HINTS["Block"]


@torch.no_grad()
def test_transformer_block_feed_forward_matches_gpt():
    g = a_gpt_block()
    mine = ex.FeedForward(C, 0.0).eval()
    copy_ffwd(mine, g.ffwd)
    x = an_input()
    same(mine(x), g.ffwd(x), "FeedForward(x) against gpt.FeedForward(x) with the same weights",
         ffwd_diagnosis() or HINTS["FeedForward"])


@torch.no_grad()
def test_transformer_block_matches_gpt_block():
    g = a_gpt_block()
    x = an_input()
    out = my_block_like(g)(x)
    want = g(x)
    same(out, want, "Block(x) against gpt.Block(x) with the same weights", diagnosis(), atol=1e-4)


@torch.no_grad()
def test_transformer_block_with_silent_sublayers_passes_x_through():
    g = a_gpt_block()
    mine = my_block_like(g)
    for layer in (mine.sa.proj, linears(mine.ffwd)[-1]):  # the two projections that write into the stream
        layer.weight.zero_()
        layer.bias.zero_()
    x = an_input()
    same(mine(x), x, "Block(x) when attention and feed-forward both output zeros (a residual block then "
         "passes x through unchanged: the residual stream)", diagnosis())
