"""sha256 digest columns as 32 bytes and back (layout/digest_columns.py)."""

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from regsweep.layout.digest_columns import SHA256_BYTES, as_bytes, as_text, dictionary_as_text


def _digests(n: int) -> list[str]:
    # Hashes of small numbers: every hex digit, and bytes 00 and ff, among them.
    return ["sha256:" + hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def test_bytes_are_what_the_hex_spells_and_text_comes_back() -> None:
    digests = pa.array([*_digests(1000), "sha256:" + "00" * 32, "sha256:" + "ff" * 32])
    spelled = as_bytes(digests)
    assert spelled.type == SHA256_BYTES
    assert spelled.to_pylist() == [bytes.fromhex(d[7:]) for d in digests.to_pylist()]
    assert as_text(spelled).equals(digests)


def test_slices_keep_their_place() -> None:
    digests = pa.array(_digests(50))
    part = digests.slice(7, 20)
    assert as_text(as_bytes(part)).equals(part)
    assert as_text(as_bytes(digests).slice(7, 20)).equals(part)


def test_empty() -> None:
    assert len(as_bytes(pa.array([], pa.string()))) == 0
    assert as_text(pa.array([], SHA256_BYTES)).equals(pa.array([], pa.string()))


def test_bytes_sort_as_their_text() -> None:
    digests = pa.array(_digests(5000))
    assert pc.sort_indices(as_bytes(digests)).equals(pc.sort_indices(digests))


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + "A" * 64,  # upper-case hex
        "sha256:" + "g" + "a" * 63,
        "sha512:" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 128,
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        as_bytes(pa.array([*_digests(3), value]))


def test_nulls_are_refused() -> None:
    with pytest.raises(ValueError):
        as_bytes(pa.array(["sha256:" + "a" * 64, None]))
    with pytest.raises(ValueError):
        as_text(pa.array([b"\0" * 32, None], SHA256_BYTES))


def test_a_dictionary_column_gets_its_text_back_chunk_by_chunk() -> None:
    digests = pa.array(_digests(20))
    chunks = [digests.slice(0, 10), digests.slice(5, 15)]
    encoded = [c.dictionary_encode() for c in chunks]
    spelled = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(e.indices, as_bytes(e.dictionary)) for e in encoded]
    )
    text = dictionary_as_text(spelled)
    assert text.type == pa.dictionary(pa.int32(), pa.string())
    assert text.cast(pa.string()).equals(pa.chunked_array(chunks))
    other = pa.chunked_array([digests])
    assert dictionary_as_text(other) is other


def test_is_sha256_text_and_bytes_or_null_sort_out_other_values() -> None:
    from regsweep.layout.digest_columns import bytes_or_null, is_sha256_text, text_of

    good = _digests(3)
    assert is_sha256_text(pa.array(good)) and is_sha256_text(pa.array([], pa.string()))
    odd = ["sha512:" + "a" * 128, "sha256:" + "A" * 64, "", "sha256:" + "a" * 63 + "g"]
    for value in odd:
        assert not is_sha256_text(pa.array([*good, value]))
    assert not is_sha256_text(pa.array([*good, None]))
    mixed = pa.array([good[0], None, *odd, good[2]])
    spelled = bytes_or_null(mixed)
    assert spelled.type == SHA256_BYTES
    assert text_of(spelled).to_pylist() == [good[0], None, None, None, None, None, good[2]]
    assert text_of(bytes_or_null(mixed.slice(5, 2))).to_pylist() == [None, good[2]]
    assert text_of(pa.array(good)).equals(pa.array(good))  # text as it is


def test_a_few_digests_at_a_time_give_what_all_at_once_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Digests are checked and spelled a slice of rows at a time (``_CHECK_ROWS``): slices
    of three rows, with a slice of a column and values that are not sha256 among them, give
    the same bytes, text and verdicts as one slice of every row."""
    from regsweep.layout import digest_columns
    from regsweep.layout.digest_columns import bytes_or_null, is_sha256_text

    digests = pa.array(_digests(40)).slice(3, 31)
    mixed = pa.array([*_digests(5), "sha256:" + "A" * 64, None, *_digests(9)[5:], ""])
    whole = (as_bytes(digests), bytes_or_null(mixed), is_sha256_text(digests))
    monkeypatch.setattr(digest_columns, "_CHECK_ROWS", 3)
    spelled = as_bytes(digests)
    assert spelled.equals(whole[0]) and as_text(spelled).equals(digests)
    assert bytes_or_null(mixed).equals(whole[1])
    assert is_sha256_text(digests) is whole[2] is True
    assert not is_sha256_text(mixed.drop_null())
