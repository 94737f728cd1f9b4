"""The one pattern grammar of retention policies (retention-policy.md §6.2).

| form | meaning |
|---|---|
| ``glob:`` (also when there is no prefix) | doublestar: ``*`` any run without ``/``, ``**`` any run, ``?`` one character, ``[...]`` a class, ``{a,b}`` alternation |
| ``prefix:`` | the name starts with the text |
| ``exact:`` | the name is the text |
| ``re:`` | the regular expression matches the *whole* name (always anchored) |
| ``semver:<range>`` | the name parses as a version (``defaults.semver``) inside the range |
| ``!`` before any of these | negation, in repository lists only |

``re:`` patterns are checked to stay inside RE2 syntax (no backreferences, no lookaround), so a
policy means the same here as in the Go tools it was imported from. Python's ``re`` runs them;
names are at most 255 characters (repositories) or 128 (tags), which bounds backtracking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from regsweep.retention.versions import SemverRange, SemverSettings, parse_version

KINDS = ("glob", "prefix", "exact", "re", "semver")
_NOT_RE2 = re.compile(r"\(\?(?:=|!|<=|<!)|\\[1-9]|\(\?P=|\\g<|\(\?\(|\(\?>|[*+?}][+]")


class PatternError(ValueError):
    """A pattern that does not compile; the message says why."""


def glob_to_regex(glob: str, *, slash: bool) -> str:
    """Translate a doublestar glob. With ``slash`` (repository names) ``*`` stops at ``/`` and
    ``**`` crosses it; ``a/**`` also matches ``a`` and ``**/b`` also matches ``b``."""
    out: list[str] = []
    i, n = 0, len(glob)
    depth = 0
    while i < n:
        c = glob[i]
        if c == "*":
            if i + 1 < n and glob[i + 1] == "*":
                i += 2
                at_start = i == 2 or glob[i - 3] == "/"
                if slash and at_start and i < n and glob[i] == "/":
                    out.append("(?:.*/)?")  # "**/" matches zero or more directories
                    i += 1
                    continue
                if slash and out and out[-1] == "/" and i == n:
                    out[-1] = "(?:/.*)?"  # trailing "/**" also matches the directory itself
                    continue
                out.append(".*")
                continue
            out.append("[^/]*" if slash else ".*")
        elif c == "?":
            out.append("[^/]" if slash else ".")
        elif c == "[":
            j = glob.find("]", i + 2 if i + 1 < n and glob[i + 1] in "!^" else i + 1)
            if j < 0:
                raise PatternError(f"unclosed '[' in glob {glob!r}")
            body = glob[i + 1 : j]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise PatternError(f"unclosed '{{' in glob {glob!r}")
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern. ``text`` is what the policy said, for messages and plans."""

    text: str
    kind: str
    body: str
    negated: bool = False
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _range: SemverRange | None = field(default=None, compare=False, repr=False)
    _semver: SemverSettings | None = field(default=None, compare=False, repr=False)

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches, ignoring negation (``RepositoryFilter`` applies it)."""
        if self.kind == "exact":
            return name == self.body
        if self.kind == "prefix":
            return name.startswith(self.body)
        if self.kind == "semver":
            assert self._range is not None and self._semver is not None
            v = parse_version(name, self._semver)
            return v is not None and self._range.matches(v)
        assert self._regex is not None
        return self._regex.fullmatch(name) is not None

    @property
    def literal_prefix(self) -> str | None:
        """The text every match starts with, when that is easy to tell (for overlap checks)."""
        if self.kind in ("exact", "prefix"):
            return self.body
        if self.kind == "glob":
            m = re.match(r"[^*?\[{\\]*", self.body)
            return m.group(0) if m else ""
        return None


def compile_pattern(
    text: str,
    *,
    repository: bool = False,
    semver: SemverSettings | None = None,
) -> Pattern:
    """Compile ``text``; raise PatternError with a one-line reason. ``repository`` allows ``!``
    and makes ``*`` stop at ``/``."""
    if not isinstance(text, str) or not text:
        raise PatternError("a pattern must be a non-empty string")
    negated = False
    body = text
    if body.startswith("!"):
        if not repository:
            raise PatternError("'!' negation is only allowed in repository lists")
        negated, body = True, body[1:]
    kind = "glob"
    head, sep, rest = body.partition(":")
    if sep and head in KINDS:
        kind, body = head, rest
    if not body and kind != "prefix":
        raise PatternError(f"empty {kind}: pattern")
    if kind in ("exact", "prefix"):
        return Pattern(text, kind, body, negated)
    if kind == "semver":
        settings = semver or SemverSettings()
        try:
            rng = SemverRange(body, settings)
        except ValueError as e:
            raise PatternError(f"bad semver range {body!r}: {e}") from e
        return Pattern(text, kind, body, negated, _range=rng, _semver=settings)
    if kind == "re":
        bad = _NOT_RE2.search(body)
        if bad:
            raise PatternError(
                f"{body!r} uses {bad.group(0)!r}, which RE2 does not support "
                "(no backreferences, lookaround, atomic groups or possessive quantifiers)"
            )
        source = body
    else:
        source = glob_to_regex(body, slash=repository)
    try:
        regex = re.compile(source)
    except re.error as e:
        raise PatternError(f"invalid {kind} {body!r}: {e}") from e
    return Pattern(text, kind, body, negated, _regex=regex)


def compile_patterns(
    texts: Sequence[str], *, repository: bool = False, semver: SemverSettings | None = None
) -> tuple[Pattern, ...]:
    return tuple(compile_pattern(t, repository=repository, semver=semver) for t in texts)


def any_match(patterns: Sequence[Pattern], name: str) -> bool:
    return any(p.matches(name) for p in patterns)


@dataclass(frozen=True)
class RepositoryFilter:
    """A repository list: a name is accepted when it matches some positive pattern (or the
    list has only negations) and no negated one."""

    patterns: tuple[Pattern, ...]

    def accepts(self, repo: str) -> bool:
        positive = [p for p in self.patterns if not p.negated]
        negative = [p for p in self.patterns if p.negated]
        if positive and not any_match(positive, repo):
            return False
        return not any_match(negative, repo)
