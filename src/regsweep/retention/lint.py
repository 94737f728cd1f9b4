"""Warnings about policies that are valid but dangerous (retention-policy.md §6.4).

The errors of §6.4 are raised while parsing (``schema.parse_policy``); these are the warnings:

- a delete rule with no ``older_than`` while ``min_age`` is under a day;
- ``unmatched: delete`` without a catch-all keep rule (zot's advice);
- ``first-match`` where an earlier delete rule's selection may overlap a later keep rule's;
- rules on pulled/active time, which offline storage cannot know (pushed stands in);
- with an evaluation result: repositories where more than half the tags would go, and ranks
  dominated by equal push times (a copy or restore probably reset the mtimes).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from regsweep.retention.evaluate import RetentionResult
from regsweep.retention.patterns import Pattern
from regsweep.retention.schema import Issue, Policy, PolicyFile, Rule, Select
from regsweep.scan.snapshot import column

TIE_WARNING_FRACTION = 0.5
TIE_WARNING_MIN = 4


def _warn(pf: PolicyFile, path: str, message: str) -> Issue:
    line = pf.lines.line(path) if pf.lines is not None else None
    return Issue(path, line, message, "warning")


def _everything(p: Pattern) -> bool:
    return (
        (p.kind == "glob" and p.body in ("*", "**"))
        or (p.kind == "re" and p.body in (".*", ".+", "(.*)"))
        or (p.kind == "prefix" and p.body == "")
    )


def _catch_all_keep(rule: Rule) -> bool:
    s = rule.select
    if rule.action != "keep" or rule.when is not None or s.repositories is not None:
        return False
    if s.media is not None or s.state == "untagged":
        return False
    t = s.tags
    if t is None:
        return True
    if t.all is not None or t.none is not None or t.not_all is not None:
        return False
    return t.any is not None and any(_everything(p) for p in t.any)


def _patterns_may_overlap(a: tuple[Pattern, ...], b: tuple[Pattern, ...]) -> bool:
    """Whether some name can match a pattern of ``a`` and one of ``b``. Decided exactly for
    prefix/exact and literal-prefix globs; anything else (regex, semver) may overlap."""
    for p in a:
        for q in b:
            lp, lq = p.literal_prefix, q.literal_prefix
            if lp is None or lq is None:
                return True
            if p.kind == "exact" and q.kind == "exact":
                if p.body == q.body:
                    return True
                continue
            if p.kind == "exact" and q.kind in ("prefix", "glob"):
                if q.matches(p.body):
                    return True
                continue
            if q.kind == "exact" and p.kind in ("prefix", "glob"):
                if p.matches(q.body):
                    return True
                continue
            if lp.startswith(lq) or lq.startswith(lp):
                return True
    return False


def _selects_may_overlap(a: Select, b: Select) -> bool:
    states = {"tagged": {"tagged"}, "untagged": {"untagged"}, "any": {"tagged", "untagged"}}
    if not states[a.state] & states[b.state]:
        return False
    if a.media is not None and b.media is not None and not a.media & b.media:
        return False
    if {a.state, b.state} == {"untagged"}:
        return True
    ta, tb = a.tags, b.tags
    if ta is None or tb is None:
        return True
    pa_ = ta.any or ta.all
    pb = tb.any or tb.all
    if not pa_ or not pb or ta.none or tb.none or ta.not_all or tb.not_all:
        return True
    return _patterns_may_overlap(pa_, pb)


def lint_policy(pf: PolicyFile) -> list[Issue]:
    """Static warnings, each naming the field and line."""
    out: list[Issue] = []
    settings = pf.settings
    for pol in pf.policies:
        out += _lint_one(pf, pol)
    rules = [rule for pol in pf.policies for rule in pol.rules]
    uses_pulls = any(c.time in ("pulled", "active") for r in rules for c in r.ages()) or any(
        c.by in ("pulled", "active") for r in rules for c in r.ranks()
    )
    if uses_pulls:
        out.append(
            _warn(
                pf,
                "settings.time_sources.pulled",
                "a rule uses pulled/active time, but registry storage records no pulls: "
                + (
                    "the push time stands in (pulled_fallback: pushed)"
                    if settings.pulled_fallback == "pushed"
                    else "it is never known, so those rules abstain"
                ),
            )
        )
    return out


def _lint_one(pf: PolicyFile, pol: Policy) -> list[Issue]:
    out: list[Issue] = []
    min_age = pf.settings.min_age
    for rule in pol.rules:
        no_age = not any(c.kind == "older_than" for c in rule.ages())
        if rule.action == "delete" and min_age < timedelta(days=1) and no_age:
            out.append(
                _warn(
                    pf,
                    rule.path,
                    f"delete rule {rule.name!r} has no older_than and settings.min_age is "
                    f"{min_age}: an image pushed a minute ago can be deleted",
                )
            )
    if pol.options.unmatched == "delete" and not any(_catch_all_keep(r) for r in pol.rules):
        out.append(
            _warn(
                pf,
                f"{pol.path}.unmatched",
                f"policy {pol.name!r}: unmatched: delete without a catch-all keep rule: every tag "
                'no rule keeps is deleted (add a last rule: {action: keep, select: {tags: {any: ["glob:*"]}}})',
            )
        )
    if pol.options.precedence == "first-match":
        for i, early in enumerate(pol.rules):
            if early.action != "delete":
                continue
            for late in pol.rules[i + 1 :]:
                if late.action == "keep" and _selects_may_overlap(early.select, late.select):
                    out.append(
                        _warn(
                            pf,
                            f"{late.path}.select",
                            f"first-match: delete rule {early.name!r} comes first and may select "
                            f"what keep rule {late.name!r} selects; it owns those, so this keep "
                            "never applies to them (move the keep rule up)",
                        )
                    )
    return out


def lint_result(pf: PolicyFile, result: RetentionResult) -> list[Issue]:
    """Warnings that need an evaluation: mass deletion, and ranks dominated by ties."""
    out: list[Issue] = []
    d = result.decisions
    per_repo: dict[str, list[str]] = defaultdict(list)
    times: dict[str, Counter[object]] = defaultdict(Counter)
    policy_of: dict[str, str | None] = {}
    for repo, kind, action, t, pol in zip(
        column(d, "repository"),
        column(d, "kind"),
        column(d, "action"),
        column(d, "push_time"),
        column(d, "policy"),
        strict=True,
    ):
        if kind != "tag":
            continue
        per_repo[repo].append(action)
        policy_of[repo] = pol
        if t is not None:
            times[repo][t.replace(microsecond=0)] += 1
    paths = {p.name: p.path for p in pf.policies}
    for repo, actions in sorted(per_repo.items()):
        path = paths.get(policy_of.get(repo) or "", "policies")
        gone = actions.count("delete")
        if actions and gone / len(actions) > 0.5:
            out.append(
                _warn(pf, path, f"repository {repo}: {gone} of {len(actions)} tags would go")
            )
        counts = times[repo]
        total = sum(counts.values())
        if total >= TIE_WARNING_MIN and counts:
            top = counts.most_common(1)[0][1]
            if top > 1 and top / total > TIE_WARNING_FRACTION:
                out.append(
                    _warn(
                        pf,
                        "settings.time_sources",
                        f"repository {repo}: {top} of {total} tags share one push time; the link "
                        "mtimes were probably reset by a copy or restore, so rank by pushed is "
                        "decided by names",
                    )
                )
    for repo, why in sorted(result.skipped.items()):
        out.append(_warn(pf, "settings.guards", f"repository {repo} is left as it is: {why}"))
    return out
