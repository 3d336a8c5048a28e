"""What every stage shares: the character tokenizer, the Tiny Shakespeare text, the split and the batches.

    from data import CharTokenizer, atomic_write, get_batch, load_text, split
    text = load_text()                      # downloads once, then reads the cache (or $GPT_DATA / a path)
    tok = CharTokenizer.from_text(text)     # 65 characters on Tiny Shakespeare
    train, val = split(torch.tensor(tok.encode(text)))
    x, y = get_batch(train, batch_size=4, block_size=8, generator=torch.Generator().manual_seed(0))
    atomic_write(path, lambda tmp: torch.save(state, tmp))   # a crash never leaves half a file at path
"""

from .atomic import atomic_write
from .batches import get_batch, split
from .shakespeare import MAX_TEXT_BYTES, DataError, load_text
from .tokenizer import CharTokenizer, UnknownCharacterError
