"""Lenient link reading (storage-layout.md §1.4 and §7.8)."""

import pytest

from regsweep.layout.digest import is_valid_digest, parse_link

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("data", "digest", "problem"),
    [
        (D.encode(), D, None),
        (b"", None, "empty"),
        (D.encode() + b"\n", D, "whitespace"),
        ((D + D).encode(), D, "doubled"),
        (D.upper().replace("SHA256", "sha256").encode(), D, "uppercase"),
        (b"blake3:" + b"a" * 64, None, "unsupported-algorithm"),
        (b"sha256:abc", None, "invalid"),
        (b"\xff\xfe", None, "invalid"),
    ],
)
def test_parse_link(data, digest, problem):
    got = parse_link(data)
    assert (got.digest, got.problem) == (digest, problem)


def test_sha512_link():
    d = "sha512:" + "b" * 128
    assert parse_link(d.encode()).digest == d
    assert is_valid_digest(d)


def test_digest_grammar():
    assert is_valid_digest(D)
    assert not is_valid_digest("sha256:" + "A" * 64)
    assert not is_valid_digest("sha256:" + "a" * 63)
    assert not is_valid_digest("md5:" + "a" * 32)
    # A trailing newline is not hex, even where it makes the length right.
    assert not is_valid_digest("sha256:" + "a" * 63 + "\n")
    assert not is_valid_digest("sha512:" + "b" * 127 + "\n")
    got = parse_link(("sha256:" + "a" * 63 + "\n").encode())
    assert got.digest is None and got.problem == "invalid"
