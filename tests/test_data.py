"""The character tokenizer, the split and the batches (data/tokenizer.py, data/batches.py)."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from data import CharTokenizer, UnknownCharacterError, get_batch, split

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
TOK = CharTokenizer.from_text(TEXT)


def test_vocabulary_is_the_sorted_set_of_characters():
    assert TOK.chars == sorted(set(TEXT))
    assert TOK.vocab_size == len(set(TEXT))
    assert TOK.encode("\n ") == [0, 1]  # newline sorts first, then space


@given(st.text(alphabet=sorted(set(TEXT))))
def test_encode_then_decode_gives_back_any_string_of_known_characters(s):
    ids = TOK.encode(s)
    assert all(0 <= i < TOK.vocab_size for i in ids)
    assert TOK.decode(ids) == s


def test_unknown_characters_are_all_named_with_repr_and_the_allowed_ones_listed():
    with pytest.raises(UnknownCharacterError) as err:
        TOK.encode("hear Zé\t!")
    msg = str(err.value)
    for ch in ["'Z'", "'é'", "'\\t'", "'!'"]:
        assert ch in msg
    assert "'h'" not in msg.split(";")[0]  # known characters are not reported as unknown
    assert "allowed" in msg and repr("".join(TOK.chars)) in msg
    assert "\n" not in msg


def test_unknown_character_error_is_a_value_error_not_a_bare_key_error():
    with pytest.raises(ValueError):
        TOK.encode("Z")
    with pytest.raises(UnknownCharacterError):
        TOK.encode("Z")
    assert not issubclass(UnknownCharacterError, KeyError)


def test_tokenizer_saves_as_plain_json_and_loads_back(tmp_path):
    path = tmp_path / "tokenizer.json"
    TOK.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved == {"type": "char", "chars": "".join(TOK.chars)}
    loaded = CharTokenizer.load(path)
    assert loaded == TOK
    assert loaded.encode(TEXT) == TOK.encode(TEXT)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary file left


def test_loading_something_that_is_not_a_tokenizer_fails_clearly():
    with pytest.raises(ValueError, match="not a saved character tokenizer"):
        CharTokenizer.from_dict({"type": "bpe"})


def test_empty_text_cannot_make_a_vocabulary():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")


def test_split_is_ninety_ten_by_position():
    ids = torch.arange(1000)
    train, val = split(ids)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)  # nothing shuffled, nothing lost


def test_batches_have_shape_b_t_and_targets_shifted_by_one():
    data = torch.arange(500)  # each token equals its position, so a shift is easy to see
    x, y = get_batch(data, batch_size=6, block_size=10, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 10)
    assert x.dtype == torch.long
    torch.testing.assert_close(y, x + 1)
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # every row is a contiguous window


def test_batches_reach_the_last_token_but_never_past_it():
    data = torch.arange(12)
    g = torch.Generator().manual_seed(1)
    seen_last = False
    for _ in range(200):
        x, y = get_batch(data, batch_size=4, block_size=4, generator=g)
        assert int(y.max()) <= 11
        seen_last |= int(y.max()) == 11
    assert seen_last


def test_same_seed_gives_the_same_batches_and_another_seed_does_not():
    data = torch.arange(10_000)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return [get_batch(data, 8, 16, generator=g) for _ in range(3)]

    a, b, c = draw(7), draw(7), draw(8)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_batches_do_not_depend_on_the_global_rng():
    data = torch.arange(10_000)
    torch.manual_seed(0)
    x1, _ = get_batch(data, 8, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(99)
    torch.rand(5)
    x2, _ = get_batch(data, 8, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2)


def test_batches_land_on_the_requested_device():
    x, y = get_batch(torch.arange(100), 2, 4, device="cpu", generator=torch.Generator().manual_seed(0))
    assert x.device.type == y.device.type == "cpu"


def test_data_shorter_than_block_plus_one_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(8), 2, 8)

