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


# The windows' range and their generator are pinned in test_pinned.py (the split and get_batch test).


def test_batches_land_on_the_requested_device():
    # "meta" is a device every PyTorch has (tensors with shapes but no data), so this runs without a GPU.
    x, y = get_batch(torch.arange(100), 2, 4, device="meta", generator=torch.Generator().manual_seed(0))
    assert x.device.type == y.device.type == "meta"


# ---- atomic writes (data/atomic.py) -------------------------------------------------------------------


class WriterCrashed(Exception):
    pass


@pytest.mark.parametrize("old", ["the old, complete file", None], ids=["over-a-file", "new-file"])
@pytest.mark.parametrize("exc", [WriterCrashed("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_write_that_fails_midway_leaves_the_old_file_or_none_and_no_temp_file(tmp_path, exc, old):
    path = tmp_path / "ckpt.pt"
    if old:
        path.write_text(old)

    def half_write(tmp):  # half of the new file in place, as a crash mid-save leaves it, then the crash
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(path, half_write)
    assert os.listdir(tmp_path) == (["ckpt.pt"] if old else [])
    assert not old or path.read_text() == old


@pytest.mark.parametrize("leftover", [None, "half of a save killed outright"], ids=["new", "over-a-leftover"])
def test_write_replaces_the_file_byte_for_byte_through_a_temp_file_beside_it_with_the_usual_permissions(
        tmp_path, leftover):
    path = tmp_path / "tokenizer.json"
    path.write_text("old")
    if leftover:
        (tmp_path / "tokenizer.json.tmp").write_text(leftover)

    def write(tmp):
        assert tmp == str(tmp_path / "tokenizer.json.tmp")  # same directory, so os.replace is a rename
        assert open(tmp).read() == ""  # a leftover is emptied, not appended to
        open(tmp, "wb").write(b'{"val_loss": 1.5}\r\n')

    assert atomic_write(path, write) == str(path)
    assert path.read_bytes() == b'{"val_loss": 1.5}\r\n'  # byte for byte: no newline translation
    assert os.listdir(tmp_path) == ["tokenizer.json"]
    if os.name == "posix":  # the umask's, as for any file open creates: not the 0o600 of tempfile.mkstemp
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
