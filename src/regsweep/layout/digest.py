"""Digest grammar (go-digest v1.0.0) and lenient parsing of link files (storage-layout.md §1.4, §7.8).

Digests are kept as their canonical strings ``<alg>:<hex>``; Arrow dictionary-encodes them in the
snapshot, so a digest that appears in many rows is stored once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# go-digest registers these three; OCI allows sha256 and sha512.
HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX_RE = re.compile(r"[a-f0-9]+")
# Nearly every digest a registry holds: one call into the regex engine decides it (a scan checks
# every descriptor of every manifest).
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def is_valid_digest(value: str) -> bool:
    """True if ``value`` is a digest Distribution accepts: registered algorithm, lower-case hex."""
    if _SHA256_RE.fullmatch(value):
        return True
    alg, sep, hex_ = value.partition(":")
    return bool(sep) and is_valid_hex(alg, hex_)


def is_valid_hex(alg: str, hex_: str) -> bool:
    # fullmatch, not ``^...$``: "$" also matches before a trailing newline.
    return HEX_LENGTH.get(alg) == len(hex_) and bool(_HEX_RE.fullmatch(hex_))


def algorithm_from_path(components: list[str]) -> str:
    """Reverse of Distribution's ``blobAlgorithmReplacer``: ``tarsum/v1/sha256`` -> ``tarsum.v1+sha256``.

    Only the registry-2.0 tarsum form spans several components; anything else is joined with
    ``+`` so it stays recognisable (and fails ``is_valid_digest``, as it should).
    """
    if len(components) == 1:
        return components[0]
    if len(components) == 3 and components[0] == "tarsum":
        return f"tarsum.{components[1]}+{components[2]}"
    return "+".join(components)


@dataclass(frozen=True, slots=True)
class LinkContent:
    """What a link file says. ``digest`` is the best reading (None if unrecoverable from content);
    ``problem`` is None for a well-formed link, else a short stable code."""

    digest: str | None
    problem: str | None


def parse_link(data: bytes) -> LinkContent:
    """Read a link leniently, recording how it deviates from the exact 71-byte form.

    Problems: ``empty``, ``whitespace`` (e.g. a trailing newline: Distribution rejects it, the
    digest is still clear), ``doubled`` (``sha256:<hex>sha256:<hex>``, the Azure append race),
    ``uppercase``, ``unsupported-algorithm``, ``invalid``.
    """
    if not data:
        return LinkContent(None, "empty")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return LinkContent(None, "invalid")
    if is_valid_digest(text):
        return LinkContent(text, None)
    stripped = text.strip()
    if stripped != text and is_valid_digest(stripped):
        return LinkContent(stripped, "whitespace")
    if not stripped:
        return LinkContent(None, "empty")
    half = len(stripped) // 2
    if (
        len(stripped) % 2 == 0
        and stripped[:half] == stripped[half:]
        and is_valid_digest(stripped[:half])
    ):
        return LinkContent(stripped[:half], "doubled")
    if is_valid_digest(stripped.lower()):
        return LinkContent(stripped.lower(), "uppercase")
    m = _DIGEST_RE.match(stripped)
    if m and m.group(1) not in HEX_LENGTH:
        return LinkContent(None, "unsupported-algorithm")
    return LinkContent(None, "invalid")
