"""The policy file as typed values, and its validation (retention-policy.md §6.2).

``parse_policy(tree, lines, source)`` turns the plain tree a YAML or TOML file decodes to into
a ``PolicyFile``, or raises ``PolicyError`` listing *every* problem, each with the field path
(``policies[0].rules[2].when.rank.by``) and, when the loader knew it, the line. Unknown keys
are errors, so a typo (``older_then``) cannot silently turn a rule into "always".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from regsweep.durations import parse_duration
from regsweep.errors import UsageError
from regsweep.retention.patterns import (
    Pattern,
    PatternError,
    RepositoryFilter,
    compile_pattern,
)
from regsweep.retention.versions import SemverSettings

ACTIONS = ("keep", "delete")
STATES = ("tagged", "untagged", "any")
UNITS = ("tag", "artifact")
PRECEDENCES = ("keep-wins", "first-match")
UNMATCHED = ("keep", "delete")
REFERRERS = ("follow-subject", "keep-orphans", "delete-orphans")
LEGACY_COSIGN = ("referrer", "tag")
TIMES = ("pushed", "pulled", "active", "created")
RANK_BY = ("pushed", "pulled", "active", "created", "semver", "natural", "name")
AMONG = ("selected", "eligible", "owned")
GROUP_BY = ("none", "semver-major", "semver-minor")
PRERELEASES = ("rank", "exclude")
MEDIA = ("image", "index", "artifact")
TIEBREAKS = ("name", "digest")
PUSHED_SOURCES = ("event_log", "tag_link_mtime", "revision_link_mtime", "config_created")
CREATED_SOURCES = ("config_created", "annotation_created")
PULLED_SOURCES = ("event_log",)
ON_READ_ERROR = ("skip_repo",)

_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W|(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?)$"
)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2d3h6m``, ``1w``, ``2592000s`` or ISO-8601 ``P30D``/``PT12H``/``P2W``.
    ISO years and months are refused: their length varies, write days."""
    s = text.strip()
    if s.upper().startswith("P"):
        m = _ISO.match(s.upper())
        if not m or s.upper() in ("P", "PT") or s.upper().endswith("T"):
            raise ValueError(
                f"not an ISO-8601 duration: {text!r} (use days, hours, minutes, seconds or "
                "weeks, e.g. P30D, PT12H; years and months are ambiguous)"
            )
        secs = 0.0
        for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if m[unit]:
                secs += float(m[unit]) * size
        return timedelta(seconds=secs)
    return parse_duration(s)


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guards:
    max_delete_fraction: float | None = 0.5  # None: off
    keep_newest_per_repo: int = 1
    on_read_error: str = "skip_repo"


@dataclass(frozen=True)
class TimeSources:
    pushed: tuple[str, ...] = PUSHED_SOURCES
    pulled: tuple[str, ...] = PULLED_SOURCES
    created: tuple[str, ...] = CREATED_SOURCES


@dataclass(frozen=True)
class Settings:
    now: datetime | None = None
    min_age: timedelta = timedelta(hours=24)
    time_sources: TimeSources = TimeSources()
    pulled_fallback: str = "pushed"  # pushed | none
    unknown_time: str = "keep"
    guards: Guards = Guards()


@dataclass(frozen=True)
class Protect:
    tags: tuple[Pattern, ...] = ()
    digests: frozenset[str] = frozenset()
    in_use_files: tuple[str, ...] = ()
    immutable_tags: tuple[Pattern, ...] = ()


@dataclass(frozen=True)
class Options:
    """What ``defaults`` sets and a policy may override."""

    unit: str = "tag"
    precedence: str = "keep-wins"
    unmatched: str = "keep"
    sibling_keep: bool = True
    referrers: str = "follow-subject"
    legacy_cosign_tags: str = "referrer"
    order_tiebreak: tuple[str, ...] = ("name", "digest")
    semver: SemverSettings = field(default_factory=SemverSettings)


@dataclass(frozen=True)
class TagClause:
    any: tuple[Pattern, ...] | None = None
    all: tuple[Pattern, ...] | None = None
    none: tuple[Pattern, ...] | None = None
    not_all: tuple[Pattern, ...] | None = None
    match_untagged: bool = False


@dataclass(frozen=True)
class Select:
    state: str = "tagged"
    tags: TagClause | None = None
    repositories: RepositoryFilter | None = None
    media: frozenset[str] | None = None


@dataclass(frozen=True)
class AgeCond:
    kind: str  # older_than | newer_than
    age: timedelta
    time: str = "pushed"


@dataclass(frozen=True)
class RankCond:
    by: str
    top: int | None = None
    beyond: int | None = None
    among: str = "selected"
    group_by: str = "none"
    prereleases: str = "rank"
    id: int = 0  # position among the rule's rank conditions


@dataclass(frozen=True)
class Cond:
    op: str  # all | any
    items: tuple[AgeCond | RankCond | Cond, ...]

    def walk(self) -> Iterator[AgeCond | RankCond]:
        for it in self.items:
            if isinstance(it, Cond):
                yield from it.walk()
            else:
                yield it


@dataclass(frozen=True)
class Rule:
    name: str
    action: str
    select: Select
    when: Cond | None = None
    path: str = ""

    def ranks(self) -> list[RankCond]:
        return [c for c in self.when.walk() if isinstance(c, RankCond)] if self.when else []

    def ages(self) -> list[AgeCond]:
        return [c for c in self.when.walk() if isinstance(c, AgeCond)] if self.when else []


@dataclass(frozen=True)
class Policy:
    name: str
    repositories: RepositoryFilter
    options: Options
    rules: tuple[Rule, ...]
    path: str = ""


@dataclass(frozen=True)
class PolicyFile:
    version: int = 1
    settings: Settings = Settings()
    protect: Protect = Protect()
    defaults: Options = Options()
    policies: tuple[Policy, ...] = ()
    source: str = "<policy>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    lines: LineMap | None = field(default=None, compare=False, repr=False)

    def policy_for(self, repo: str) -> Policy | None:
        """The first policy whose repositories accept ``repo`` (§6.3 step 1)."""
        for p in self.policies:
            if p.repositories.accepts(repo):
                return p
        return None


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    path: str
    line: int | None
    message: str
    severity: str = "error"  # error | warning

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        field_ = f" {self.path}:" if self.path else ""
        return f"{where}:{field_} {self.message}"


class PolicyError(UsageError):
    """An invalid policy file (exit 2). ``issues`` holds every problem found."""

    def __init__(self, source: str, issues: list[Issue]) -> None:
        self.source = source
        self.issues = issues
        first = issues[0].format(source) if issues else f"{source}: invalid policy"
        more = f" (and {len(issues) - 1} more problems)" if len(issues) > 1 else ""
        super().__init__(first + more)


class LineMap:
    """Field path -> line number, as the loader recorded it. A path it does not know is
    answered with the nearest known ancestor's line."""

    def __init__(self, lines: Mapping[str, int] | None = None) -> None:
        self.lines = dict(lines or {})

    def line(self, path: str) -> int | None:
        p = path
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""


# -- validation --------------------------------------------------------------------------------

T = TypeVar("T")


class _Invalid(Exception):
    pass


class _Ctx:
    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        self.issues: list[Issue] = []

    def error(self, path: str, message: str) -> _Invalid:
        self.issues.append(Issue(path, self.lines.line(path), message))
        return _Invalid()

    def guard(self, fn: Callable[..., T], default: Any) -> T:
        """``fn()``, or ``default`` when it recorded an error (so checking goes on)."""
        try:
            return fn()
        except _Invalid:
            out: T = default
            return out


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(ctx: _Ctx, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(path, f"expected a mapping, got {_typename(value)}")
    for k in value:
        if k not in allowed:
            hint = _close(str(k), allowed)
            ctx.error(
                _join(path, str(k)),
                f"unknown field {k!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f"; allowed: {', '.join(allowed)}",
            )
    return dict(value)


def _close(word: str, options: tuple[str, ...]) -> str | None:
    import difflib

    m = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return m[0] if m else None


def _typename(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, Mapping):
        return "a mapping"
    return type(v).__name__


def _choice(ctx: _Ctx, value: Any, path: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ctx.error(path, f"expected one of {', '.join(options)}; got {value!r}")
    return value


def _bool(ctx: _Ctx, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(path, f"expected true or false, got {_typename(value)}")
    return value


def _int(ctx: _Ctx, value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(path, f"expected a whole number, got {_typename(value)}")
    if value < minimum:
        raise ctx.error(path, f"must be at least {minimum}, got {value}")
    return value


def _str(ctx: _Ctx, value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ctx.error(path, f"expected a non-empty string, got {_typename(value)}")
    return value


def _list(ctx: _Ctx, value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ctx.error(path, f"expected a list, got {_typename(value)}")
    return list(value)


def _duration(ctx: _Ctx, value: Any, path: str) -> timedelta:
    if not isinstance(value, str):
        raise ctx.error(
            path, f"expected a duration string such as 24h, 30d or P30D, got {_typename(value)}"
        )
    try:
        return parse_age(value)
    except ValueError as e:
        raise ctx.error(path, str(e)) from e


def _patterns(
    ctx: _Ctx, value: Any, path: str, *, repository: bool = False, semver: SemverSettings
) -> tuple[Pattern, ...]:
    out = []
    for i, item in enumerate(_list(ctx, value, path)):
        p = _join(path, i)
        if not isinstance(item, str):
            ctx.error(p, f"expected a pattern string, got {_typename(item)}")
            continue
        try:
            out.append(compile_pattern(item, repository=repository, semver=semver))
        except PatternError as e:
            ctx.error(p, str(e))
    return tuple(out)


def _now(ctx: _Ctx, value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            raise ctx.error(path, f"not an RFC 3339 time: {value!r}") from e
    else:
        raise ctx.error(path, f"expected an RFC 3339 time, got {_typename(value)}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _sources(ctx: _Ctx, value: Any, path: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = _list(ctx, value, path)
    for i, s in enumerate(items):
        ctx.guard(lambda s=s, i=i: _choice(ctx, s, _join(path, i), allowed), "")
    return tuple(s for s in items if s in allowed)


def _settings(ctx: _Ctx, value: Any, path: str) -> Settings:
    m = _mapping(
        ctx,
        value,
        path,
        ("now", "min_age", "time_sources", "pulled_fallback", "unknown_time", "guards"),
    )
    d = Settings()
    now = ctx.guard(lambda: _now(ctx, m.get("now"), _join(path, "now")), None)
    min_age = d.min_age
    if "min_age" in m:
        min_age = ctx.guard(lambda: _duration(ctx, m["min_age"], _join(path, "min_age")), min_age)
    ts = d.time_sources
    if "time_sources" in m:
        tp = _join(path, "time_sources")
        tm = ctx.guard(
            lambda: _mapping(ctx, m["time_sources"], tp, ("pushed", "pulled", "created")), {}
        )
        ts = TimeSources(
            pushed=ctx.guard(
                lambda: _sources(ctx, tm["pushed"], _join(tp, "pushed"), PUSHED_SOURCES), ts.pushed
            )
            if "pushed" in tm
            else ts.pushed,
            pulled=ctx.guard(
                lambda: _sources(ctx, tm["pulled"], _join(tp, "pulled"), PULLED_SOURCES), ts.pulled
            )
            if "pulled" in tm
            else ts.pulled,
            created=ctx.guard(
                lambda: _sources(ctx, tm["created"], _join(tp, "created"), CREATED_SOURCES),
                ts.created,
            )
            if "created" in tm
            else ts.created,
        )
    fallback = d.pulled_fallback
    if "pulled_fallback" in m:
        fallback = ctx.guard(
            lambda: _choice(
                ctx, m["pulled_fallback"], _join(path, "pulled_fallback"), ("pushed", "none")
            ),
            fallback,
        )
    if "unknown_time" in m:
        ctx.guard(
            lambda: _choice(ctx, m["unknown_time"], _join(path, "unknown_time"), ("keep",)), ""
        )
    guards = d.guards
    if "guards" in m:
        gp = _join(path, "guards")
        gm = ctx.guard(
            lambda: _mapping(
                ctx,
                m["guards"],
                gp,
                ("max_delete_fraction", "keep_newest_per_repo", "on_read_error"),
            ),
            {},
        )
        frac: float | None = guards.max_delete_fraction
        if "max_delete_fraction" in gm:
            v = gm["max_delete_fraction"]
            if v is None:
                frac = None
            elif isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                ctx.error(
                    _join(gp, "max_delete_fraction"),
                    f"expected a number from 0 to 1 or null (off), got {v!r}",
                )
            else:
                frac = float(v)
        keep_newest = guards.keep_newest_per_repo
        if "keep_newest_per_repo" in gm:
            keep_newest = ctx.guard(
                lambda: _int(ctx, gm["keep_newest_per_repo"], _join(gp, "keep_newest_per_repo")),
                keep_newest,
            )
        on_err = guards.on_read_error
        if "on_read_error" in gm:
            on_err = ctx.guard(
                lambda: _choice(
                    ctx, gm["on_read_error"], _join(gp, "on_read_error"), ON_READ_ERROR
                ),
                on_err,
            )
        guards = Guards(frac, keep_newest, on_err)
    settings = Settings(now, min_age, ts, fallback, "keep", guards)
    return settings


_OPTION_KEYS = (
    "unit",
    "precedence",
    "unmatched",
    "sibling_keep",
    "referrers",
    "legacy_cosign_tags",
    "order_tiebreak",
    "semver",
)


def _options(ctx: _Ctx, m: Mapping[str, Any], path: str, base: Options) -> Options:
    def pick(key: str, options: tuple[str, ...], default: str) -> str:
        if key not in m:
            return default
        return ctx.guard(lambda: _choice(ctx, m[key], _join(path, key), options), default)

    sibling = base.sibling_keep
    if "sibling_keep" in m:
        sibling = ctx.guard(
            lambda: _bool(ctx, m["sibling_keep"], _join(path, "sibling_keep")), sibling
        )
    tiebreak = base.order_tiebreak
    if "order_tiebreak" in m:
        tp = _join(path, "order_tiebreak")
        items = ctx.guard(lambda: _list(ctx, m["order_tiebreak"], tp), [])
        for i, it in enumerate(items):
            ctx.guard(lambda it=it, i=i: _choice(ctx, it, _join(tp, i), TIEBREAKS), "")
        tiebreak = tuple(it for it in items if it in TIEBREAKS)
        # Ties must always end in a total order: whatever the file says, name then digest last.
        tiebreak = tiebreak + tuple(t for t in TIEBREAKS if t not in tiebreak)
    semver = base.semver
    if "semver" in m:
        sp = _join(path, "semver")
        sm = ctx.guard(lambda: _mapping(ctx, m["semver"], sp, ("strip_prefix", "loose")), {})
        strip = semver.strip_prefix
        if "strip_prefix" in sm:
            items = ctx.guard(lambda: _list(ctx, sm["strip_prefix"], _join(sp, "strip_prefix")), [])
            for i, it in enumerate(items):
                if not isinstance(it, str):
                    ctx.error(_join(_join(sp, "strip_prefix"), i), "expected a string")
            strip = tuple(it for it in items if isinstance(it, str))
        loose = semver.loose
        if "loose" in sm:
            loose = ctx.guard(lambda: _bool(ctx, sm["loose"], _join(sp, "loose")), loose)
        semver = SemverSettings(strip, loose)
    return Options(
        unit=pick("unit", UNITS, base.unit),
        precedence=pick("precedence", PRECEDENCES, base.precedence),
        unmatched=pick("unmatched", UNMATCHED, base.unmatched),
        sibling_keep=sibling,
        referrers=pick("referrers", REFERRERS, base.referrers),
        legacy_cosign_tags=pick("legacy_cosign_tags", LEGACY_COSIGN, base.legacy_cosign_tags),
        order_tiebreak=tiebreak,
        semver=semver,
    )


def _protect(ctx: _Ctx, value: Any, path: str, semver: SemverSettings) -> Protect:
    m = _mapping(ctx, value, path, ("tags", "digests", "in_use_files", "immutable_tags"))
    tags = (
        ctx.guard(lambda: _patterns(ctx, m["tags"], _join(path, "tags"), semver=semver), ())
        if "tags" in m
        else ()
    )
    immutable = (
        ctx.guard(
            lambda: _patterns(
                ctx, m["immutable_tags"], _join(path, "immutable_tags"), semver=semver
            ),
            (),
        )
        if "immutable_tags" in m
        else ()
    )
    digests: set[str] = set()
    if "digests" in m:
        dp = _join(path, "digests")
        for i, d in enumerate(ctx.guard(lambda: _list(ctx, m["digests"], dp), [])):
            if not isinstance(d, str) or not re.fullmatch(
                r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", d
            ):
                ctx.error(_join(dp, i), f"not a digest (algorithm:hex): {d!r}")
            else:
                digests.add(d)
    files: list[str] = []
    if "in_use_files" in m:
        fp = _join(path, "in_use_files")
        for i, f in enumerate(ctx.guard(lambda: _list(ctx, m["in_use_files"], fp), [])):
            files.append(ctx.guard(lambda f=f, i=i: _str(ctx, f, _join(fp, i)), ""))
    return Protect(tags, frozenset(digests), tuple(f for f in files if f), immutable)


def _tag_clause(ctx: _Ctx, value: Any, path: str, semver: SemverSettings) -> TagClause:
    m = _mapping(ctx, value, path, ("any", "all", "none", "not_all", "match_untagged"))
    lists: dict[str, tuple[Pattern, ...] | None] = {}
    for q in ("any", "all", "none", "not_all"):
        lists[q] = (
            ctx.guard(lambda q=q: _patterns(ctx, m[q], _join(path, q), semver=semver), ())
            if q in m
            else None
        )
        if q in m and isinstance(m[q], list) and not m[q]:
            ctx.error(_join(path, q), "an empty list matches nothing (remove the clause instead)")
    mu = False
    if "match_untagged" in m:
        mu = ctx.guard(
            lambda: _bool(ctx, m["match_untagged"], _join(path, "match_untagged")), False
        )
    return TagClause(lists["any"], lists["all"], lists["none"], lists["not_all"], mu)


def _select(ctx: _Ctx, value: Any, path: str, semver: SemverSettings) -> Select:
    m = _mapping(ctx, value, path, ("state", "tags", "repositories", "media"))
    state = "tagged"
    if "state" in m:
        state = ctx.guard(lambda: _choice(ctx, m["state"], _join(path, "state"), STATES), state)
    tags = (
        ctx.guard(lambda: _tag_clause(ctx, m["tags"], _join(path, "tags"), semver), None)
        if "tags" in m
        else None
    )
    repos = None
    if "repositories" in m:
        pats = ctx.guard(
            lambda: _patterns(
                ctx, m["repositories"], _join(path, "repositories"), repository=True, semver=semver
            ),
            (),
        )
        repos = RepositoryFilter(pats)
    media = None
    if "media" in m:
        mp = _join(path, "media")
        items = ctx.guard(lambda: _list(ctx, m["media"], mp), [])
        for i, it in enumerate(items):
            ctx.guard(lambda it=it, i=i: _choice(ctx, it, _join(mp, i), MEDIA), "")
        media = frozenset(it for it in items if it in MEDIA)
    return Select(state, tags, repos, media)


class _RankIds:
    def __init__(self) -> None:
        self.n = 0


def _age(ctx: _Ctx, kind: str, value: Any, path: str) -> AgeCond:
    m = _mapping(ctx, value, path, ("age", "time"))
    if "age" not in m:
        raise ctx.error(path, f"{kind} needs an age (e.g. {{age: 30d}})")
    age = _duration(ctx, m["age"], _join(path, "age"))
    time = "pushed"
    if "time" in m:
        time = _choice(ctx, m["time"], _join(path, "time"), TIMES)
    return AgeCond(kind, age, time)


def _rank(ctx: _Ctx, value: Any, path: str, ids: _RankIds) -> RankCond:
    m = _mapping(ctx, value, path, ("top", "beyond", "by", "among", "group_by", "prereleases"))
    if ("top" in m) == ("beyond" in m):
        raise ctx.error(path, "rank needs exactly one of top: N or beyond: N")
    if "by" not in m:
        raise ctx.error(
            path, "rank needs by: (pushed, pulled, active, created, semver, natural or name)"
        )
    top = _int(ctx, m["top"], _join(path, "top")) if "top" in m else None
    beyond = _int(ctx, m["beyond"], _join(path, "beyond")) if "beyond" in m else None
    by = _choice(ctx, m["by"], _join(path, "by"), RANK_BY)
    among = _choice(ctx, m.get("among", "selected"), _join(path, "among"), AMONG)
    group_by = _choice(ctx, m.get("group_by", "none"), _join(path, "group_by"), GROUP_BY)
    pre = _choice(ctx, m.get("prereleases", "rank"), _join(path, "prereleases"), PRERELEASES)
    ids.n += 1
    return RankCond(by, top, beyond, among, group_by, pre, ids.n)


def _cond(ctx: _Ctx, value: Any, path: str, ids: _RankIds, op: str = "all") -> Cond:
    m = _mapping(ctx, value, path, ("older_than", "newer_than", "rank", "any", "all"))
    if not m:
        raise ctx.error(path, "an empty condition (remove it, or add older_than/newer_than/rank)")
    items: list[AgeCond | RankCond | Cond] = []
    for key in ("older_than", "newer_than"):
        if key in m:
            items.append(
                ctx.guard(
                    lambda key=key: _age(ctx, key, m[key], _join(path, key)),
                    AgeCond(key, timedelta(0)),
                )
            )
    if "rank" in m:
        items.append(
            ctx.guard(lambda: _rank(ctx, m["rank"], _join(path, "rank"), ids), RankCond("pushed"))
        )
    for key in ("any", "all"):
        if key in m:
            lp = _join(path, key)
            sub = ctx.guard(lambda key=key, lp=lp: _list(ctx, m[key], lp), [])
            if not sub:
                ctx.error(lp, f"{key}: needs at least one condition")
            items.append(
                Cond(
                    key,
                    tuple(
                        ctx.guard(
                            lambda s=s, i=i, lp=lp: _cond(ctx, s, _join(lp, i), ids),
                            Cond("all", ()),
                        )
                        for i, s in enumerate(sub)
                    ),
                )
            )
    return Cond(op, tuple(items))


def _rule(ctx: _Ctx, value: Any, path: str, options: Options, index: int, names: set[str]) -> Rule:
    m = _mapping(ctx, value, path, ("name", "action", "select", "when", "description"))
    name = f"rule-{index + 1}"
    if "name" in m:
        name = ctx.guard(lambda: _str(ctx, m["name"], _join(path, "name")), name)
    if name in names:
        ctx.error(_join(path, "name"), f"duplicate rule name {name!r} in this policy")
    names.add(name)
    if "action" not in m:
        ctx.error(path, "a rule needs action: keep or delete")
        action = "keep"
    else:
        action = ctx.guard(
            lambda: _choice(ctx, m["action"], _join(path, "action"), ACTIONS), "keep"
        )
    select = ctx.guard(
        lambda: _select(ctx, m.get("select"), _join(path, "select"), options.semver), Select()
    )
    when = None
    if "when" in m:
        when = ctx.guard(lambda: _cond(ctx, m["when"], _join(path, "when"), _RankIds()), None)
    rule = Rule(name, action, select, when, path)
    for i, r in enumerate(rule.ranks()):
        if r.among == "owned" and options.precedence != "first-match":
            ctx.error(
                _join(path, "when"), f"rank {i + 1}: among: owned needs precedence: first-match"
            )
    return rule


def _policy(ctx: _Ctx, value: Any, path: str, defaults: Options, index: int) -> Policy:
    m = _mapping(ctx, value, path, ("name", "repositories", "rules", "description", *_OPTION_KEYS))
    name = f"policy-{index + 1}"
    if "name" in m:
        name = ctx.guard(lambda: _str(ctx, m["name"], _join(path, "name")), name)
    options = _options(ctx, m, path, defaults)
    if "repositories" not in m:
        ctx.error(path, 'a policy needs repositories: (e.g. ["glob:**"] for every repository)')
        repos = RepositoryFilter(())
    else:
        rp = _join(path, "repositories")
        pats = ctx.guard(
            lambda: _patterns(ctx, m["repositories"], rp, repository=True, semver=options.semver),
            (),
        )
        if isinstance(m["repositories"], list) and not m["repositories"]:
            ctx.error(rp, "an empty list matches no repository")
        repos = RepositoryFilter(pats)
    rules: list[Rule] = []
    names: set[str] = set()
    rl = _join(path, "rules")
    raw_rules = ctx.guard(lambda: _list(ctx, m.get("rules", []), rl), [])
    for i, r in enumerate(raw_rules):
        rules.append(
            ctx.guard(
                lambda r=r, i=i: _rule(ctx, r, _join(rl, i), options, i, names),
                Rule("", "keep", Select()),
            )
        )
    if options.precedence == "first-match":
        seen: dict[str, int] = {}
        for i, r in enumerate(raw_rules):
            key = repr(r.get("select")) if isinstance(r, Mapping) else ""
            if key in seen:
                ctx.error(
                    _join(_join(rl, i), "select"),
                    f"first-match: same select as rule {seen[key] + 1}, so this rule never owns anything",
                )
            seen.setdefault(key, i)
    return Policy(name, repos, options, tuple(r for r in rules if r.name), path)


TOP_KEYS = ("version", "settings", "protect", "defaults", "policies")


def parse_policy(tree: Any, lines: LineMap | None = None, source: str = "<policy>") -> PolicyFile:
    """Validate ``tree`` and return the policy; raise PolicyError listing every problem."""
    ctx = _Ctx(lines or LineMap())
    try:
        top = _mapping(ctx, tree, "", TOP_KEYS)
    except _Invalid:
        raise PolicyError(source, ctx.issues) from None
    if "version" not in top:
        ctx.error("version", "missing version: 1")
    elif top["version"] != 1 or isinstance(top["version"], bool):
        ctx.error(
            "version", f"unsupported version {top['version']!r} (this regsweep reads version 1)"
        )
    settings = ctx.guard(lambda: _settings(ctx, top.get("settings"), "settings"), Settings())
    dm = ctx.guard(lambda: _mapping(ctx, top.get("defaults"), "defaults", _OPTION_KEYS), {})
    defaults = _options(ctx, dm, "defaults", Options())
    protect = ctx.guard(
        lambda: _protect(ctx, top.get("protect"), "protect", defaults.semver), Protect()
    )
    policies: list[Policy] = []
    raw = ctx.guard(lambda: _list(ctx, top.get("policies", []), "policies"), [])
    names: set[str] = set()
    for i, p in enumerate(raw):
        pol = ctx.guard(lambda p=p, i=i: _policy(ctx, p, f"policies[{i}]", defaults, i), None)
        if pol is not None:
            if pol.name in names:
                ctx.error(f"policies[{i}].name", f"duplicate policy name {pol.name!r}")
            names.add(pol.name)
            policies.append(pol)
    if settings.pulled_fallback == "none" and not settings.time_sources.pulled:
        for pol in policies:
            for rule in pol.rules:
                for c in rule.ages():
                    if c.time in ("pulled",):
                        ctx.error(
                            f"{rule.path}.when",
                            "older_than/newer_than on pulled time, but time_sources.pulled is "
                            "empty and pulled_fallback is none: it could never be known",
                        )
    if ctx.issues:
        raise PolicyError(source, ctx.issues)
    return PolicyFile(1, settings, protect, defaults, tuple(policies), source, dict(top), ctx.lines)
