"""SOLUTION to exercise 9 (exercises/e09_weight_tying.py). A spoiler: try the exercise first."""


def tie_weights(model):
    # the same Parameter object in both places: its gradient is the sum of both uses' gradients
    model.lm_head.weight = model.token_embedding_table.weight  # (vocab_size, n_embd)
    return model
