"""Exercise 9: weight tying, one matrix for reading tokens in and writing logits out.

Stage: gpt.py    Note: ../notes/embedding-vs-linear.md
Check: python -m pytest exercises -k weight_tying
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. gpt.py's token_embedding_table.weight is (vocab_size, n_embd), and so is lm_head.weight: one
turns a token into a vector, the other scores a vector against every token. GPT-2 uses one matrix for
both (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models",
https://arxiv.org/abs/1608.05859; nanoGPT's model.py does the same). Tie them:

  tie_weights(model) -> model
      model is a gpt.GPTLanguageModel. Afterwards model.lm_head.weight must be the very same Parameter
      as model.token_embedding_table.weight (not a copy), so one update changes both uses.

The check counts the parameters (the model is vocab_size * n_embd numbers smaller), checks that the
shared matrix receives the gradients of both uses, and trains a tiny tied GPT for 150 steps.
"""


def tie_weights(model):
    raise NotImplementedError("not done yet: tie_weights(model)")
