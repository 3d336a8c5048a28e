"""What every stage shares: the character tokenizer, the Tiny Shakespeare text, the split and the batches.

    from data import CharTokenizer, load_text, split, get_batch
    text = load_text()                      # downloads once, then reads the cache (or $GPT_DATA / a path)
    tok = CharTokenizer.from_text(text)     # 65 characters on Tiny Shakespeare
    train, val = split(torch.tensor(tok.encode(text)))
    x, y = get_batch(train, batch_size=4, block_size=8, generator=torch.Generator().manual_seed(0))
"""

from .batches import get_batch, split
from .shakespeare import DataError, load_text
from .tokenizer import CharTokenizer, UnknownCharacterError

__all__ = [
    "CharTokenizer",
    "DataError",
    "UnknownCharacterError",
    "get_batch",
    "load_text",
    "split",
]
