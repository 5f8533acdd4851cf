"""Key files in the data directory: C2SP signer key strings with owner-only permissions."""

from __future__ import annotations

import os

import pytest

from ledger.datadir import DataDirError, read_private_key, write_private_key
from ledger.keys import Signer


@pytest.mark.parametrize("seed", [bytes([0xFB] * 32), bytes(range(32)), bytes(32)])
def test_round_trip_even_when_base64_holds_plus(tmp_path, seed):
    signer = Signer.from_seed(seed)
    path = tmp_path / "k.key"
    write_private_key(path, "example.org/log", signer)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    name, loaded = read_private_key(path)
    assert name == "example.org/log"
    assert loaded.public == signer.public


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k.key"
    write_private_key(path, "n", Signer.generate())
    with pytest.raises(DataDirError, match="exists"):
        write_private_key(path, "n", Signer.generate())


def test_refuses_group_readable_key(tmp_path):
    path = tmp_path / "k.key"
    write_private_key(path, "n", Signer.generate())
    os.chmod(path, 0o640)
    with pytest.raises(DataDirError, match="readable by others"):
        read_private_key(path)


def test_detects_mismatched_key_hash(tmp_path):
    path = tmp_path / "k.key"
    write_private_key(path, "n", Signer.generate())
    text = path.read_text()
    parts = text.split("+", 4)
    parts[3] = "00000000"
    path.write_text("+".join(parts))
    with pytest.raises(DataDirError, match="key hash"):
        read_private_key(path)
