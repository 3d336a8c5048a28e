"""The character tokenizer, the split, the batches and the atomic writes (data/tokenizer.py, data/batches.py,
data/atomic.py)."""

import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from data import CharTokenizer, atomic_write, get_batch

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
TOK = CharTokenizer.from_text(TEXT)


@given(st.text(alphabet=sorted(set(TEXT))))
def test_encode_then_decode_gives_back_any_string_of_known_characters(s):
    ids = TOK.encode(s)
    assert all(0 <= i < TOK.vocab_size for i in ids)
    assert TOK.decode(ids) == s


def test_batches_reach_the_last_token_but_never_past_it():
    data = torch.arange(12)
    g = torch.Generator().manual_seed(1)
    seen_last = False
    for _ in range(200):
        x, y = get_batch(data, batch_size=4, block_size=4, generator=g)
        assert int(y.max()) <= 11
        seen_last |= int(y.max()) == 11
    assert seen_last


def test_batches_depend_on_the_generator_seed_only_not_on_the_global_rng():
    data = torch.arange(10_000)

    def draw(seed, global_seed):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(seed)
        return torch.stack([get_batch(data, 8, 16, generator=g)[0] for _ in range(3)])

    assert torch.equal(draw(7, global_seed=0), draw(7, global_seed=99))
    assert not torch.equal(draw(7, global_seed=0), draw(8, global_seed=0))


def test_batches_land_on_the_requested_device():
    # "meta" is a device every PyTorch has (tensors with shapes but no data), so this runs without a GPU.
    x, y = get_batch(torch.arange(100), 2, 4, device="meta", generator=torch.Generator().manual_seed(0))
    assert x.device.type == y.device.type == "meta"


# ---- atomic writes (data/atomic.py) -------------------------------------------------------------------


class WriterCrashed(Exception):
    pass


def half_write_then(exc):
    """A write callback that puts half a file in place, as a crash mid-save would, then raises exc."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise exc

    return write


@pytest.mark.parametrize("exc", [WriterCrashed("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(tmp_path, exc):
    path = tmp_path / "ckpt.pt"
    path.write_text("the old, complete file")
    with pytest.raises(type(exc)):
        atomic_write(path, half_write_then(exc))
    assert path.read_text() == "the old, complete file"
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_write_that_fails_before_the_file_exists_leaves_nothing(tmp_path):
    with pytest.raises(WriterCrashed):
        atomic_write(tmp_path / "ckpt.pt", half_write_then(WriterCrashed()))
    assert os.listdir(tmp_path) == []


def test_successful_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    assert atomic_write(path, lambda tmp: open(tmp, "wb").write(b'{"val_loss": 1.5}\r\n')) == str(path)
    assert path.read_bytes() == b'{"val_loss": 1.5}\r\n'  # byte for byte: no newline translation
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_new_file_gets_the_umask_permissions_like_any_file_open_creates(tmp_path):
    path = tmp_path / "new.pt"
    atomic_write(path, lambda tmp: torch.save({"step": 3}, tmp))
    assert torch.load(path) == {"step": 3}
    if os.name == "posix":  # not the 0o600 of tempfile.mkstemp
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_temp_file_is_beside_the_destination_named_after_it_and_a_leftover_one_is_overwritten(tmp_path):
    seen = []
    (tmp_path / "tokenizer.json.tmp").write_text("half of a save killed outright")

    def write(tmp):
        seen.append(tmp)
        assert open(tmp).read() == ""  # the leftover is emptied, not appended to
        open(tmp, "w").write("new")

    atomic_write(tmp_path / "tokenizer.json", write)
    assert seen == [str(tmp_path / "tokenizer.json.tmp")]  # same directory, so os.replace is a rename
    assert os.listdir(tmp_path) == ["tokenizer.json"] and (tmp_path / "tokenizer.json").read_text() == "new"
