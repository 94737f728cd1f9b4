"""Version-like tag names: SemVer 2.0.0 parsing and ranges, and natural ordering.

Parsing and precedence come from the ``semver`` package (SemVer 2.0.0: numeric prerelease
identifiers sort numerically and below alphanumeric ones, a prerelease sorts below its release,
build metadata is ignored). Range matching is ours, because ``semver`` compares against one
full version at a time and policies want ranges such as ``>=1.4.0 <2`` (retention-policy.md
§6.2). The range grammar is node-semver's, restricted to what a retention policy needs:

- a range is one or more comparator sets separated by ``||`` (OR);
- a set is whitespace-separated comparators (AND), or a hyphen range ``1.2 - 2``;
- a comparator is ``[op]version`` with ``op`` one of ``>= <= > < =`` (none means ``=``),
  ``^`` (same left-most non-zero component) or ``~`` (same minor, or same major when only the
  major is given);
- a version may be partial (``1``, ``1.2``) or use ``x``/``X``/``*`` wildcards; partial
  versions are x-ranges: ``=1.2`` is ``>=1.2.0 <1.3.0-0`` and ``<2`` is ``<2.0.0-0``.

Unlike node-semver, a prerelease is not excluded from a range whose comparators carry no
prerelease: it is compared by plain SemVer precedence (``2.0.0-rc.1`` is ``>=1.0.0`` and
``<2.0.0``; it is not ``<2``, which means below every 2.x, prereleases included).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from semver import Version

_NUM = r"0|[1-9]\d*"
_XR = rf"(?:{_NUM}|[xX*])"
_PARTIAL = re.compile(
    rf"^(?P<major>{_XR})(?:\.(?P<minor>{_XR})(?:\.(?P<patch>{_XR})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?$"
)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|>|<|=|\^|~>?|)\s*(?P<ver>\S+)$")


@dataclass(frozen=True)
class SemverSettings:
    """How tags become versions: ``strip_prefix`` is tried in order (at most one is removed);
    ``loose`` also accepts ``1`` and ``1.2`` (read as ``1.0.0`` and ``1.2.0``)."""

    strip_prefix: tuple[str, ...] = ("v", "V")
    loose: bool = False


def parse_version(tag: str, settings: SemverSettings) -> Version | None:
    """The SemVer 2.0.0 version ``tag`` names, or None when it does not parse."""
    text = tag
    for p in settings.strip_prefix:
        if p and text.startswith(p):
            text = text[len(p) :]
            break
    try:
        return Version.parse(text, optional_minor_and_patch=settings.loose)
    except (ValueError, TypeError):
        return None


def is_prerelease(v: Version) -> bool:
    return v.prerelease is not None


# -- ranges ------------------------------------------------------------------------------------

_Test = Callable[[Version], bool]


def _lowest(v: Version) -> Version:
    """The lowest version at or above ``v`` including prereleases: ``1.2.0`` -> ``1.2.0-0``."""
    return v if v.prerelease else v.replace(prerelease="0")


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)

    def next_up(self) -> Version | None:
        """The first version above the x-range (exclusive upper bound, prereleases included)."""
        if self.major is None:
            return None
        if self.minor is None:
            return Version(self.major + 1, 0, 0, "0")
        if self.patch is None:
            return Version(self.major, self.minor + 1, 0, "0")
        return None


def _partial(text: str, settings: SemverSettings) -> _Partial:
    for p in settings.strip_prefix:
        if p and text.startswith(p):
            text = text[len(p) :]
            break
    m = _PARTIAL.match(text)
    if not m:
        raise ValueError(f"not a version: {text!r}")

    def num(s: str | None) -> int | None:
        return None if s is None or s in "xX*" else int(s)

    major, minor, patch = num(m["major"]), num(m["minor"]), num(m["patch"])
    if major is None:
        minor = patch = None
    elif minor is None:
        patch = None
    return _Partial(major, minor, patch, m["pre"] if patch is not None else None)


def _ge(v: Version) -> _Test:
    return lambda x: x >= v


def _lt(v: Version) -> _Test:
    return lambda x: x < v


def _comparator(op: str, p: _Partial) -> list[_Test]:
    lo = p.floor()
    hi = p.next_up()
    exact = p.patch is not None
    if op in ("", "="):
        if p.major is None:
            return []
        if exact:
            return [lambda x: x.compare(lo) == 0]
        assert hi is not None
        return [_ge(_lowest(lo)), _lt(hi)]
    if op == ">=":
        return [_ge(lo if exact else _lowest(lo))]
    if op == ">":
        if p.major is None:
            return [lambda x: False]
        if exact:
            return [lambda x: x > lo]
        assert hi is not None
        return [_ge(hi)]
    if op == "<":
        if p.major is None:
            return [lambda x: False]
        return [_lt(lo if exact else _lowest(lo))]
    if op == "<=":
        if p.major is None or hi is None:
            return [lambda x: x <= lo] if p.major is not None else []
        return [_lt(hi)]
    if op in ("~", "~>"):
        if p.major is None:
            return []
        upper = (
            Version(p.major + 1, 0, 0, "0")
            if p.minor is None
            else Version(p.major, p.minor + 1, 0, "0")
        )
        return [_ge(lo if exact else _lowest(lo)), _lt(upper)]
    if op == "^":
        if p.major is None:
            return []
        if p.major > 0 or p.minor is None:
            upper = Version(p.major + 1, 0, 0, "0")
        elif p.minor > 0 or p.patch is None:
            upper = Version(0, p.minor + 1, 0, "0")
        else:
            upper = Version(0, 0, (p.patch or 0) + 1, "0")
        return [_ge(lo if exact else _lowest(lo)), _lt(upper)]
    raise ValueError(f"unknown operator {op!r}")


class SemverRange:
    """A parsed range; ``SemverRange(text, settings).matches(version)``."""

    def __init__(self, text: str, settings: SemverSettings = SemverSettings()) -> None:
        self.text = text
        self._sets: list[list[_Test]] = []
        if not text.strip():
            raise ValueError("empty semver range")
        for part in text.split("||"):
            part = part.strip()
            if not part:
                raise ValueError(f"empty alternative in semver range {text!r}")
            tests: list[_Test] = []
            hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", part)
            if hyphen:
                tests += _comparator(">=", _partial(hyphen[1], settings))
                tests += _comparator("<=", _partial(hyphen[2], settings))
            else:
                # ">= 1.2" is one comparator: glue operators to the version that follows.
                tokens = re.sub(r"(>=|<=|>|<|=|\^|~>?)\s+", r"\1", part).split()
                for tok in tokens:
                    m = _COMPARATOR.match(tok)
                    if not m:
                        raise ValueError(f"not a comparator: {tok!r}")
                    tests += _comparator(m["op"], _partial(m["ver"], settings))
            self._sets.append(tests)

    def matches(self, v: Version) -> bool:
        return any(all(t(v) for t in tests) for tests in self._sets)


# -- natural order -----------------------------------------------------------------------------

_CHUNK = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that compares digit runs as numbers: ``build-10`` > ``build-9``."""
    out: list[tuple[int, int, str]] = []
    for i, part in enumerate(_CHUNK.split(name)):
        if not part:
            continue
        if i % 2:
            out.append((1, int(part), part))
        else:
            out.append((0, 0, part))
    return tuple(out)


def highest(values: Sequence[Version]) -> Version | None:
    return max(values) if values else None
