"""The character tokenizer every stage shares.

The vocabulary is the sorted set of characters in a text; a character's id is its place in that list.
Tiny Shakespeare has 65 distinct characters, so ids run from 0 to 64.
"""

class UnknownCharacterError(ValueError):
    """Raised when a string holds characters the vocabulary lacks."""


class CharTokenizer:
    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("a vocabulary lists each character once")
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}  # string -> id

    @classmethod
    def from_text(cls, text):
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        try:
            return [self.stoi[c] for c in s]
        except KeyError:
            raise UnknownCharacterError(self.unknown_message(s)) from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def unknown_message(self, s):
        missing = sorted({c for c in s if c not in self.stoi})
        return (
            f"{len(missing)} character(s) not in the vocabulary: {', '.join(map(repr, missing))}; "
            f"allowed are the {self.vocab_size} characters {''.join(self.chars)!r}"
        )

    # A tokenizer goes into every checkpoint as this dict, so a sample can be drawn later without the
    # training text; the runner also writes it as plain JSON beside them (tokenizer.json).
    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != "char" or not isinstance(d.get("chars"), str):
            raise ValueError("not a saved character tokenizer")
        return cls(d["chars"])

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
