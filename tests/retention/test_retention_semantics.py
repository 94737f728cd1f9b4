"""Evaluation semantics of retention-policy.md §6.3 on small exact layouts: semver order and
ranges, patterns, precedence, overrides, time sources, unknown times and ties."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from retention_helpers import (
    NOW,
    Layout,
    decision,
    deleted_tags,
    evaluate,
    kept_tags,
    one_policy,
    policy,
    tiny,
)

from imagegen import image, index, make_layer
from regsweep.retention import loads_policy
from regsweep.retention.patterns import compile_pattern
from regsweep.retention.schema import parse_age
from regsweep.retention.times import (
    CREATED_ANNOTATION,
    BlobReader,
    TimeResolver,
    _dated,
    parse_rfc3339,
)
from regsweep.retention.versions import SemverRange, SemverSettings, parse_version

DAY = timedelta(days=1)
RELEASES = ["v1.9.3", "v1.10.0", "v1.2.0", "v2.0.0-rc.1", "v2.0.0-alpha", "v2.0.0-rc.10", "latest"]


def _releases(tmp_path: Path, tags: list[str] = RELEASES) -> Layout:
    layout = Layout(tmp_path / "store")
    # Push in an order unrelated to the version order, all at different times.
    for i, tag in enumerate(tags):
        layout.push("app", tiny(f"rel-{tag}"), [tag], age=30 * DAY - i * DAY)
    return layout


def _rank_rule(top: int, **rank: object) -> dict[str, object]:
    return {
        "name": "keep-top",
        "action": "keep",
        "select": {"tags": {"any": ["glob:*"]}},
        "when": {"rank": {"top": top, "by": "semver", **rank}},
    }


DELETE_REST = {"name": "rest", "action": "delete", "select": {"tags": {"any": ["glob:*"]}}}


# -- semver ------------------------------------------------------------------------------------------


def test_semver_precedence_ranks_v1_10_above_v1_9_3(tmp_path: Path) -> None:
    layout = _releases(tmp_path)
    result = evaluate(one_policy([_rank_rule(10), DELETE_REST]), layout)
    ranks = {r["tag"]: r["rank"] for r in result.decisions.to_pylist() if r["rule"] == "keep-top"}
    # SemVer 2.0.0: 2.0.0-alpha < 2.0.0-rc.1 < 2.0.0-rc.10 (numeric identifiers compare as numbers)
    assert ranks == {
        "v2.0.0-rc.10": 1,
        "v2.0.0-rc.1": 2,
        "v2.0.0-alpha": 3,
        "v1.10.0": 4,
        "v1.9.3": 5,
        "v1.2.0": 6,
    }
    # "latest" is not a version: not ranked, so the keep rule abstains and the delete rule decides.
    assert decision(result, "latest")["rank"] is None
    assert deleted_tags(result) == {"latest"}


def test_semver_prereleases_excluded(tmp_path: Path) -> None:
    layout = _releases(tmp_path)
    result = evaluate(one_policy([_rank_rule(1, prereleases="exclude"), DELETE_REST]), layout)
    assert kept_tags(result) == {"v1.10.0"}
    assert decision(result, "v1.10.0")["rank"] == 1
    for tag in ("v2.0.0-rc.1", "v2.0.0-rc.10", "v2.0.0-alpha"):
        assert decision(result, tag)["rank"] is None  # abstained: not ranked at all


def test_unparsable_tags_are_never_ranked_nor_deleted_by_a_rank(tmp_path: Path) -> None:
    layout = _releases(tmp_path, ["v1.0.0", "v1.1.0", "v1.2.0", "main", "1.2", "v01.2.3"])
    pf = one_policy(
        [
            {
                "name": "beyond-1",
                "action": "delete",
                "select": {"tags": {"any": ["glob:*"]}},
                "when": {"rank": {"beyond": 1, "by": "semver"}},
            }
        ]
    )
    result = evaluate(pf, layout)
    assert deleted_tags(result) == {"v1.0.0", "v1.1.0"}
    # not versions (strict): kept by default, unranked
    for tag in ("main", "1.2", "v01.2.3"):
        d = decision(result, tag)
        assert (d["action"], d["rank"], d["decided_by"]) == ("keep", None, "default")


def test_semver_loose_and_group_by_minor(tmp_path: Path) -> None:
    layout = _releases(tmp_path, ["1.2", "1.2.5", "1.2.10", "1.3.0", "1.3.1", "2.0"])
    pf = policy(
        {
            "version": 1,
            "settings": {"min_age": "0s", "guards": {"max_delete_fraction": None}},
            "defaults": {"semver": {"loose": True}},
            "policies": [
                {
                    "name": "p",
                    "repositories": ["glob:**"],
                    "rules": [
                        {
                            "name": "newest-patch-per-minor",
                            "action": "keep",
                            "select": {"tags": {"any": ["semver:>=0.0.0"]}},
                            "when": {
                                "rank": {"top": 1, "by": "semver", "group_by": "semver-minor"}
                            },
                        },
                        {"name": "rest", "action": "delete", "select": {"state": "tagged"}},
                    ],
                }
            ],
        }
    )
    result = evaluate(pf, layout)
    assert kept_tags(result) == {"1.2.10", "1.3.1", "2.0"}


@pytest.mark.parametrize(
    ("rng", "yes", "no"),
    [
        (">=1.4.0 <2", ["1.4.0", "1.99.0", "1.5.0-rc.1"], ["2.0.0", "2.0.0-rc.1", "1.3.9"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["2.0.0", "1.2.2"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("~1.2", ["1.2.0", "1.2.99"], ["1.3.0"]),
        ("1.x || >=3.1.0 <3.2", ["1.0.0", "1.9.9", "3.1.5"], ["2.0.0", "3.2.0"]),
        ("1.2.3 - 1.4", ["1.2.3", "1.4.7"], ["1.5.0", "1.2.2"]),
        ("=1.2.3", ["1.2.3", "1.2.3+build.5"], ["1.2.4"]),
    ],
)
def test_semver_ranges(rng: str, yes: list[str], no: list[str]) -> None:
    r = SemverRange(rng)
    s = SemverSettings()
    for v in yes:
        parsed = parse_version(v, s)
        assert parsed is not None and r.matches(parsed), (rng, v)
    for v in no:
        parsed = parse_version(v, s)
        assert parsed is not None and not r.matches(parsed), (rng, v)


# -- patterns -----------------------------------------------------------------------------------------


def test_patterns_are_fully_anchored() -> None:
    assert compile_pattern("re:v[0-9]+").matches("v12")
    assert not compile_pattern("re:v[0-9]+").matches("xv12")
    assert not compile_pattern("re:v[0-9]+").matches("v12-rc")
    assert compile_pattern("glob:sha-*").matches("sha-abc")
    assert not compile_pattern("sha-*").matches("pr-sha-abc")  # no prefix means glob
    assert compile_pattern("glob:{main,master}").matches("master")
    assert compile_pattern("prefix:ci-").matches("ci-")
    assert not compile_pattern("exact:latest").matches("latest2")
    repo = compile_pattern("glob:prod/**", repository=True)
    assert repo.matches("prod/a/b") and repo.matches("prod") and not repo.matches("production")
    assert not compile_pattern("glob:team/*", repository=True).matches("team/a/b")


def test_re_patterns_stay_inside_re2() -> None:
    from regsweep.retention.patterns import PatternError

    for bad in (r"re:(a)\1", "re:(?=x)y", "re:(?<!x)y"):
        with pytest.raises(PatternError, match="RE2"):
            compile_pattern(bad)


def test_repository_negation_and_first_policy_wins(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    for repo in ("prod/api", "prod/legacy/old", "dev/x"):
        layout.push(repo, tiny(repo), ["t1"], age=40 * DAY)
    tree = {
        "version": 1,
        "settings": {
            "min_age": "0s",
            "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0},
        },
        "policies": [
            {
                "name": "prod",
                "repositories": ["glob:prod/**", "!glob:prod/legacy/**"],
                "rules": [
                    {"name": "del", "action": "delete", "select": {"tags": {"any": ["glob:*"]}}}
                ],
            },
            {
                "name": "rest",
                "repositories": ["glob:**"],
                "rules": [{"name": "k", "action": "keep"}],
            },
        ],
    }
    result = evaluate(policy(tree), layout)
    assert deleted_tags(result) == {"t1"}
    assert decision(result, "t1", "prod/api")["policy"] == "prod"
    assert decision(result, "t1", "prod/legacy/old")["policy"] == "rest"


# -- precedence -----------------------------------------------------------------------------------


def test_keep_wins_over_delete_whatever_the_order(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("a"), ["ci-1"], age=40 * DAY)
    rules = [
        {"name": "del", "action": "delete", "select": {"tags": {"any": ["glob:ci-*"]}}},
        {"name": "keep", "action": "keep", "select": {"tags": {"any": ["exact:ci-1"]}}},
    ]
    result = evaluate(one_policy(rules), layout)
    assert decision(result, "ci-1")["rule"] == "keep" and not deleted_tags(result)
    result = evaluate(one_policy(rules, precedence="first-match"), layout)
    assert decision(result, "ci-1")["rule"] == "del" and deleted_tags(result) == {"ci-1"}


def test_first_match_owner_that_does_not_fire_gives_the_opposite(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("new"), ["ci-new"], age=2 * DAY)
    layout.push("app", tiny("old"), ["ci-old"], age=40 * DAY)
    rules = [
        {
            "name": "keep-recent",
            "action": "keep",
            "select": {"tags": {"any": ["re:ci-.*"]}},
            "when": {"newer_than": {"age": "7d"}},
        }
    ]
    result = evaluate(one_policy(rules, precedence="first-match", unmatched="delete"), layout)
    assert deleted_tags(result) == {"ci-old"}
    assert decision(result, "ci-old")["rule"] == "keep-recent"


def test_unmatched_delete_and_match_untagged(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("a"), ["keep-me"], age=40 * DAY)
    layout.push("app", tiny("b"), ["other"], age=40 * DAY)
    untagged = layout.push("app", tiny("c"), age=40 * DAY)
    rules = [
        {
            "name": "k",
            "action": "keep",
            "select": {"state": "any", "tags": {"any": ["exact:keep-me"], "match_untagged": True}},
        }
    ]
    result = evaluate(one_policy(rules, unmatched="delete"), layout)
    assert deleted_tags(result) == {"other"}
    assert result.kept_untagged == {"app": {untagged}}


def test_tag_quantifiers(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("ab"), ["a-1", "b-1"], age=40 * DAY)
    layout.push("app", tiny("a"), ["a-2"], age=40 * DAY)
    layout.push("app", tiny("lm"), ["latest", "master"], age=40 * DAY)

    def deleted_with(tags: dict[str, object]) -> set[str]:
        rule = {"name": "d", "action": "delete", "select": {"tags": tags}}
        return deleted_tags(evaluate(one_policy([rule], unit="artifact"), layout))

    assert deleted_with({"all": ["prefix:a-", "prefix:b-"]}) == {"a-1", "b-1"}
    assert deleted_with({"any": ["prefix:b-", "exact:a-2"]}) == {"a-1", "b-1", "a-2"}
    assert deleted_with({"none": ["prefix:b-"]}) == {"a-2", "latest", "master"}
    # Harbor "excludes": selected if some tag matches none of the patterns
    assert deleted_with({"not_all": ["exact:latest", "exact:master"]}) == {"a-1", "b-1", "a-2"}


# -- overrides ------------------------------------------------------------------------------------


def test_sibling_keep_and_protect(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    d = tiny("d")
    layout.push("app", d, ["sha-abc", "prod-7"], age=20 * DAY)
    layout.push("app", tiny("e"), ["sha-def"], age=20 * DAY)
    tree = {
        "version": 1,
        "settings": {
            "min_age": "0s",
            "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0},
        },
        "protect": {"tags": ["glob:prod-*"]},
        "policies": [
            {
                "name": "p",
                "repositories": ["glob:**"],
                "rules": [
                    {
                        "name": "expire",
                        "action": "delete",
                        "select": {"tags": {"any": ["glob:sha-*", "glob:prod-*"]}},
                    }
                ],
            }
        ],
    }
    result = evaluate(policy(tree), layout)
    assert decision(result, "prod-7")["rule"] == "protect:tags"
    assert (decision(result, "sha-abc")["decided_by"], decision(result, "sha-abc")["rule"]) == (
        "guard",
        "sibling_keep",
    )
    assert deleted_tags(result) == {"sha-def"}
    tree["policies"][0]["sibling_keep"] = False  # type: ignore[index]
    assert deleted_tags(evaluate(policy(tree), layout)) == {"sha-def", "sha-abc"}


def test_min_age_keep_newest_and_max_delete_fraction(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    for i in range(4):
        layout.push("app", tiny(f"i{i}"), [f"t{i}"], age=(10 - i) * DAY)
    layout.push("app", tiny("fresh"), ["fresh"], age=timedelta(hours=2))
    rule = {"name": "all", "action": "delete", "select": {"tags": {"any": ["glob:*"]}}}

    def run(settings: dict[str, object]) -> tuple[set[str], dict[str, str]]:
        tree = {
            "version": 1,
            "settings": settings,
            "policies": [{"name": "p", "repositories": ["glob:**"], "rules": [rule]}],
        }
        result = evaluate(policy(tree), layout)
        return deleted_tags(result), result.skipped

    # defaults: min_age 24h keeps "fresh", keep_newest_per_repo 1 keeps it too; 4/5 > 0.5
    gone, skipped = run({})
    assert gone == set() and "max_delete_fraction" in skipped["app"]
    gone, _ = run({"guards": {"max_delete_fraction": None}})
    assert gone == {"t0", "t1", "t2", "t3"}
    gone, _ = run(
        {"min_age": "0s", "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 2}}
    )
    assert gone == {"t0", "t1", "t2"}  # fresh and t3 are the two newest
    gone, _ = run(
        {"min_age": "8d", "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0}}
    )
    assert gone == {"t0", "t1"}  # pushed 10 and 9 days ago; t2 (8 days) is not older than 8d


# -- times ----------------------------------------------------------------------------------------


def test_time_sources_are_recorded_and_unknown_times_are_never_old(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("a"), ["tagged"], age=40 * DAY)
    untagged = layout.push("app", tiny("b"), age=40 * DAY)
    rules = [
        {
            "name": "old",
            "action": "delete",
            "select": {"state": "any"},
            "when": {"older_than": {"age": "30d"}},
        }
    ]
    result = evaluate(one_policy(rules), layout)
    assert decision(result, "tagged")["time_source"] == "tag_link_mtime"
    row = next(r for r in result.decisions.to_pylist() if r["kind"] == "untagged")
    assert (row["digest"], row["time_source"], row["action"]) == (
        untagged,
        "revision_link_mtime",
        "delete",
    )

    # Only the config's created time: sample images are built at FIXED_TIME (2026-11-01).
    tree = {
        "version": 1,
        "settings": {
            **{"min_age": "0s", "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0}},
            "time_sources": {"pushed": ["config_created"]},
        },
        "policies": [{"name": "p", "repositories": ["glob:**"], "rules": rules}],
    }
    result = evaluate(policy(tree), layout)
    assert decision(result, "tagged")["time_source"] == "config_created"
    assert deleted_tags(result) == set()  # created 28 days before NOW: not older than 30d
    assert result.config_reads == 2

    # An index has no config: with config_created only, its time is unknown: never old.
    layout.push(
        "app", index([tiny("x"), tiny("y", architecture="arm64")]), ["multi"], age=400 * DAY
    )
    result = evaluate(policy(tree), layout)
    d = decision(result, "multi")
    assert (d["action"], d["time_source"], d["decided_by"]) == ("keep", None, "default")


def test_ties_are_broken_by_name_then_digest(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    untagged = []
    for tag in ("c", "a", "b"):
        layout.push("app", tiny(tag), [tag], age=10 * DAY)
        untagged.append(layout.push("app", tiny(f"u-{tag}"), age=10 * DAY))
    same = (NOW - 10 * DAY).timestamp()
    for info in layout.store.iter_objects("docker/registry/v2/repositories/"):
        os.utime(layout.root / info.key, (same, same))  # every link: one push time
    rules = [
        {
            "name": "beyond-1",
            "action": "delete",
            "select": {"state": "any"},
            "when": {"rank": {"beyond": 1, "by": "pushed"}},
        }
    ]
    result = evaluate(one_policy(rules, precedence="first-match"), layout)
    # Untagged manifests have no name: they come first, in digest order; then tags by name.
    order = [*sorted(untagged), "a", "b", "c"]
    ranks = {r["tag"] or r["digest"]: r["rank"] for r in result.decisions.to_pylist()}
    assert [ranks[x] for x in order] == [1, 2, 3, 4, 5, 6]
    assert result.kept_untagged == {"app": {sorted(untagged)[0]}}
    assert deleted_tags(result) == {"a", "b", "c"}


def test_durations() -> None:
    assert parse_age("30d") == 30 * DAY
    assert parse_age("2d3h6m") == timedelta(days=2, hours=3, minutes=6)
    assert parse_age("1w") == 7 * DAY
    assert parse_age("P30D") == 30 * DAY
    assert parse_age("PT12H") == timedelta(hours=12)
    assert parse_age("2592000s") == 30 * DAY
    with pytest.raises(ValueError):
        parse_age("P1M")


def test_toml_is_the_same_tree_as_yaml(tmp_path: Path) -> None:
    toml = """
version = 1
[settings]
min_age = "0s"
guards = { max_delete_fraction = 1.0, keep_newest_per_repo = 0 }

[[policies]]
name = "apps"
repositories = ["glob:apps/**"]
[[policies.rules]]
name = "expire-builds"
action = "delete"
select.tags.any = ["glob:sha-*"]
when.older_than = { age = "14d", time = "pushed" }
"""
    yaml_text = """
version: 1
settings: {min_age: 0s, guards: {max_delete_fraction: 1.0, keep_newest_per_repo: 0}}
policies:
  - name: apps
    repositories: ["glob:apps/**"]
    rules:
      - name: expire-builds
        action: delete
        select: {tags: {any: ["glob:sha-*"]}}
        when: {older_than: {age: 14d, time: pushed}}
"""
    a, b = loads_policy(toml, fmt="toml"), loads_policy(yaml_text)
    assert a.policies == b.policies and a.settings == b.settings
    layout = Layout(tmp_path / "store")
    layout.push("apps/web", tiny("old"), ["sha-old"], age=20 * DAY)
    layout.push("apps/web", tiny("new"), ["sha-new"], age=2 * DAY)
    assert deleted_tags(evaluate(a, layout)) == {"sha-old"}


def test_artifact_rank_uses_all_its_layers(tmp_path: Path) -> None:
    """A shared layer does not make two images one candidate: digests are the unit."""
    base = make_layer("base", 64)
    layout = Layout(tmp_path / "store")
    one = image([base, make_layer("one", 64)], created=NOW)
    two = image([base, make_layer("two", 64)], created=NOW)
    layout.push("app", one, ["one"], age=9 * DAY)
    layout.push("app", two, ["two"], age=8 * DAY)
    rules = [
        {
            "name": "d",
            "action": "delete",
            "select": {"state": "any"},
            "when": {"rank": {"beyond": 1, "by": "pushed"}},
        }
    ]
    result = evaluate(one_policy(rules, unit="artifact"), layout)
    assert deleted_tags(result) == {"one"}


def test_in_use_files_protect_by_reference_and_digest(tmp_path: Path) -> None:
    from regsweep.retention import load_policy

    layout = Layout(tmp_path / "store")
    layout.push("team/app", tiny("a"), ["t1"], age=40 * DAY)
    b = layout.push("team/app", tiny("b"), ["t2"], age=40 * DAY)
    layout.push("team/app", tiny("c"), ["t3"], age=40 * DAY)
    (tmp_path / "in-use.txt").write_text(
        f"# exported from the clusters\nregistry.example.com:5000/team/app:t1\nteam/app@{b}\n"
    )
    (tmp_path / "p.yml").write_text(
        "version: 1\n"
        "settings: {min_age: 0s, guards: {max_delete_fraction: null, keep_newest_per_repo: 0}}\n"
        "protect: {in_use_files: [in-use.txt]}\n"  # relative to the policy file
        'policies: [{name: p, repositories: ["glob:**"], rules: [{name: d, action: delete}]}]\n'
    )
    result = evaluate(load_policy(tmp_path / "p.yml"), layout)
    assert deleted_tags(result) == {"t3"}
    assert (
        decision(result, "t1")["rule"] == decision(result, "t2")["rule"] == "protect:in_use_files"
    )


def test_rank_by_natural_and_by_name(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    for tag in ("build-9", "build-10", "build-100"):
        layout.push("app", tiny(tag), [tag], age=40 * DAY)

    def top1(by: str) -> set[str]:
        rule = {
            "name": "top",
            "action": "keep",
            "select": {"tags": {"any": ["glob:build-*"]}},
            "when": {"rank": {"top": 1, "by": by}},
        }
        return kept_tags(evaluate(one_policy([rule, DELETE_REST]), layout))

    assert top1("natural") == {"build-100"}
    assert top1("name") == {"build-9"}  # plain string order: "build-9" > "build-100"


def test_created_times_come_from_the_parts_of_documents_kept(tmp_path: Path) -> None:
    """The reader keeps only the parts of a config or manifest the times read (a whole config
    per manifest was most of a config-time policy's memory): ``created``, the created
    annotation and the created label; the times are what the whole documents give."""
    doc = {
        "created": "2026-01-02T03:04:05Z",
        "history": [{"created_by": "x" * 100}],
        "annotations": {CREATED_ANNOTATION: "2026-02-01T00:00:00Z", "other": "y"},
        "config": {"Labels": {CREATED_ANNOTATION: "2026-03-01T00:00:00Z", "a": "b"}, "Env": []},
    }
    assert _dated(doc) == {
        "created": "2026-01-02T03:04:05Z",
        "annotations": {CREATED_ANNOTATION: "2026-02-01T00:00:00Z"},
        "config": {"Labels": {CREATED_ANNOTATION: "2026-03-01T00:00:00Z"}},
    }
    assert _dated({"config": {"Labels": None}, "rootfs": {}}) == {}

    layout = Layout(tmp_path / "store")
    label = "2025-05-05T05:05:05Z"
    labelled = image(
        [make_layer("labelled", 64)], created=NOW - 10 * DAY, labels={CREATED_ANNOTATION: label}
    )
    plain = tiny("plain")
    layout.push("app", labelled, ["l"])
    layout.push("app", plain, ["p"])
    snap = layout.scan()
    settings = loads_policy(
        "version: 1\npolicies: []\nsettings: {time_sources: {created: [annotation_created]}}"
    ).settings
    times = TimeResolver(snap, BlobReader(snap, layout.store), settings)
    assert times.annotation_created(labelled.digest) == parse_rfc3339(label)
    assert times.annotation_created(plain.digest) is None
    assert times.config_created(labelled.digest) == NOW - 10 * DAY
    assert times.reader.reads == 4  # each manifest and each config once (then cached)
