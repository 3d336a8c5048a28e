"""The character tokenizer, the split, the batches and the atomic writes (data/tokenizer.py, data/batches.py,
data/atomic.py)."""

import json
import os
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from data import (CharTokenizer, UnknownCharacterError, atomic_write, atomic_write_text, get_batch,
                  remove_stale_temps, split)
from data.atomic import TEMP_PREFIX, process_alive

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
    assert isinstance(err.value, ValueError) and not isinstance(err.value, KeyError)  # not a bare KeyError


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


def test_data_shorter_than_block_plus_one_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(8), 2, 8)


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
    assert atomic_write_text(path, '{"val_loss": 1.5}\r\n') == str(path)
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


def test_temp_file_is_beside_the_destination_and_named_with_our_prefix_and_pid(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        open(tmp, "w").close()

    atomic_write(tmp_path / "tokenizer.json", write)
    (tmp,) = seen
    assert os.path.dirname(tmp) == str(tmp_path)  # same directory, so os.replace is a rename
    name = os.path.basename(tmp)
    assert name.startswith(f"{TEMP_PREFIX}{os.getpid()}-") and name.endswith("-tokenizer.json")


@pytest.mark.skipif(os.name != "posix", reason="pid liveness is checked on POSIX only; elsewhere age decides")
def test_process_alive_tells_a_running_process_from_an_exited_one_and_refuses_to_guess(exited_pid):
    assert process_alive(os.getpid()) is True
    assert process_alive(str(exited_pid)) is False
    assert process_alive("0") is None  # os.kill(0, ...) would mean our whole process group
    assert process_alive("not-a-pid") is None and process_alive("9" * 30) is None


@pytest.mark.skipif(os.name != "posix", reason="pid liveness is checked on POSIX only")
def test_process_of_another_user_counts_as_alive(monkeypatch):
    def kill(pid, signal):
        raise PermissionError(1, "Operation not permitted")  # what os.kill says about another user's process

    monkeypatch.setattr(os, "kill", kill)
    assert process_alive(4242) is True


@pytest.mark.skipif(os.name != "posix", reason="pid liveness is checked on POSIX only; elsewhere age decides")
def test_stale_temp_of_a_dead_writer_is_removed_but_live_and_foreign_files_are_kept(tmp_path, exited_pid):
    pid = exited_pid
    dead = tmp_path / f"{TEMP_PREFIX}{pid}-0badc0de-ckpt.pt"
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-12345678-ckpt.pt"  # this process could be writing it now
    foreign = [tmp_path / "ckpt.pt", tmp_path / ".tmp-4242-notes.txt", tmp_path / f"x{TEMP_PREFIX}1-a-b"]
    for path in [dead, live, *foreign]:
        path.write_text("x")
    # Only regular files are ever deleted: not a directory, nor a link (which could point anywhere).
    odd = [tmp_path / f"{TEMP_PREFIX}{pid}-dir", tmp_path / f"{TEMP_PREFIX}{pid}-link"]
    odd[0].mkdir()
    odd[1].symlink_to(dead.name)

    assert remove_stale_temps(tmp_path) == [dead]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in [live, *foreign, *odd])
    assert remove_stale_temps(tmp_path) == []  # nothing left to tidy


def test_temp_whose_writer_cannot_be_checked_is_removed_only_when_old(tmp_path):
    unchecked = tmp_path / f"{TEMP_PREFIX}not-a-pid-ckpt.pt"  # no pid: only its age can tell
    unchecked.write_text("x")
    assert remove_stale_temps(tmp_path, max_age=60) == []
    day_ago = time.time() - 24 * 3600
    os.utime(unchecked, (day_ago, day_ago))
    assert remove_stale_temps(tmp_path, max_age=60) == [unchecked]


def test_removing_stale_temps_from_a_missing_directory_or_a_file_is_not_an_error(tmp_path):
    assert remove_stale_temps(tmp_path / "nope") == []
    (tmp_path / f"{TEMP_PREFIX}1-a-b").write_text("x")
    assert remove_stale_temps(tmp_path / f"{TEMP_PREFIX}1-a-b") == []
