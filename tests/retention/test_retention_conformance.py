"""Conformance with the vendors' documented worked examples (retention-policy.md §6.7).

Each example imports the vendor's own policy text through our importer (``exact=True``: no
min_age, no guards, as the spec asks) and evaluates it on a layout holding the example's
images, pushed the documented number of days before ``NOW``:

- AWS ECR "Examples of lifecycle policies": filtering on multiple rules (A, B), multiple tags
  in a single rule (A, B), all images (A, B); first-match, unit artifact, among: selected;
- GitLab "cleanup policy" workflow example: 10 tags, keep_n 1, older_than 7d, keep regex
  ``production-.*``, delete regex ``.*``: deletes dev-v42, v43 and v42.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from retention_helpers import (
    Layout,
    deleted_digests,
    deleted_tags,
    evaluate,
    kept_tags,
    names_of,
    policy,
    tiny,
)

from regsweep.retention import import_ecr, import_gitlab, loads_policy

DAY = timedelta(days=1)


def _ecr_rule(prio: int, selection: dict[str, object]) -> dict[str, object]:
    return {
        "rulePriority": prio,
        "description": f"Rule {prio}",
        "selection": selection,
        "action": {"type": "expire"},
    }


def _run_ecr(
    tmp_path: Path, ecr_policy: dict[str, object], images: dict[str, tuple[list[str], timedelta]]
) -> set[str]:
    """Push ``images`` (name -> (tags, age)) into one repository, import and evaluate the ECR
    policy, and return the names of the images it expires."""
    imported = import_ecr(
        json.loads(json.dumps(ecr_policy)), repository="exact:my-repo", exact=True
    )
    # Round-trip through the YAML the CLI would write: the file, not the tree, is the product.
    pf = loads_policy(imported.to_yaml())
    layout = Layout(tmp_path / "store")
    digests = {
        name: layout.push("my-repo", tiny(f"ecr-{name}"), tags, age=age)
        for name, (tags, age) in images.items()
    }
    result = evaluate(pf, layout)
    assert not result.skipped
    return names_of(deleted_digests(result), digests)


# -- ECR: filtering on multiple rules ------------------------------------------------------------

MULTIPLE_RULES = {
    "rules": [
        _ecr_rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["prod*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        _ecr_rule(
            2,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["beta*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
    ]
}


def test_ecr_multiple_rules_example_a(tmp_path: Path) -> None:
    images = {
        "A": (["beta-1", "prod-1"], 10 * DAY),
        "B": (["beta-2", "prod-2"], 9 * DAY),
        "C": (["beta-3"], 8 * DAY),
    }
    assert _run_ecr(tmp_path, MULTIPLE_RULES, images) == {"A"}


def test_ecr_multiple_rules_example_b(tmp_path: Path) -> None:
    images = {
        "A": (["beta-1", "prod-1"], 10 * DAY),
        "B": (["beta-2", "prod-2"], 9 * DAY),
        "C": (["beta-3", "prod-3"], 8 * DAY),
    }
    assert _run_ecr(tmp_path, MULTIPLE_RULES, images) == {"A", "B"}


def test_ecr_multiple_rules_with_the_older_prefix_list_form(tmp_path: Path) -> None:
    """The archived docs wrote the same example with tagPrefixList: same result."""
    prefix_form = {
        "rules": [
            _ecr_rule(
                1,
                {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["prod"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
            ),
            _ecr_rule(
                2,
                {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["beta"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
            ),
        ]
    }
    images = {
        "A": (["beta-1", "prod-1"], 10 * DAY),
        "B": (["beta-2", "prod-2"], 9 * DAY),
        "C": (["beta-3"], 8 * DAY),
    }
    assert _run_ecr(tmp_path, prefix_form, images) == {"A"}


# -- ECR: multiple tags in a single rule ----------------------------------------------------------


def test_ecr_multiple_tags_example_a(tmp_path: Path) -> None:
    ecr = {
        "rules": [
            _ecr_rule(
                1,
                {
                    "tagStatus": "tagged",
                    "tagPatternList": ["alpha*", "beta*"],
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 5,
                },
            )
        ]
    }
    images = {
        "A": (["alpha-1"], 12 * DAY),
        "B": (["beta-1"], 11 * DAY),
        "C": (["alpha-2", "beta-2"], 10 * DAY),
        "D": (["alpha-3"], 4 * DAY),
        "E": (["beta-3"], 3 * DAY),
        "F": (["alpha-4", "beta-4"], 2 * DAY),
    }
    assert _run_ecr(tmp_path, ecr, images) == {"C"}


def test_ecr_multiple_tags_example_b(tmp_path: Path) -> None:
    ecr = {
        "rules": [
            _ecr_rule(
                1,
                {
                    "tagStatus": "tagged",
                    "tagPatternList": ["alpha*", "beta*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
            )
        ]
    }
    images = {
        "A": (["alpha-1", "beta-1", "gamma-1"], 10 * DAY),
        "B": (["alpha-2", "beta-2"], 9 * DAY),
        "C": (["alpha-3", "beta-3", "gamma-3"], 8 * DAY),
    }
    assert _run_ecr(tmp_path, ecr, images) == {"A", "B"}


# -- ECR: all images -------------------------------------------------------------------------------


def test_ecr_all_images_example_a(tmp_path: Path) -> None:
    ecr = {
        "rules": [
            _ecr_rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})
        ]
    }
    images = {
        "A": (["alpha-1"], 4 * DAY),
        "B": (["beta-1"], 3 * DAY),
        "C": ([], 2 * DAY),
        "D": (["alpha-2"], 1 * DAY),
    }
    assert _run_ecr(tmp_path, ecr, images) == {"A", "B", "C"}


ALL_IMAGES_B = {
    "rules": [
        _ecr_rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["alpha*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        _ecr_rule(
            2,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
        ),
        _ecr_rule(3, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
    ]
}
# D and E are both "pushed 1 day ago" in the docs, and E takes the newest slot: E is pushed a
# few seconds after D (the docs do not say how ties are broken; retention-policy.md §6.6 b).
ALL_IMAGES_B_IMAGES = {
    "A": (["alpha-1", "beta-1"], 4 * DAY),
    "B": ([], 3 * DAY),
    "C": (["alpha-2"], 2 * DAY),
    "D": (["git-hash"], 1 * DAY),
    "E": ([], 1 * DAY - timedelta(seconds=30)),
}


def test_ecr_all_images_example_b(tmp_path: Path) -> None:
    assert _run_ecr(tmp_path, ALL_IMAGES_B, ALL_IMAGES_B_IMAGES) == {"A", "B", "D"}


def test_ecr_identify_clause_needs_among_selected(tmp_path: Path) -> None:
    """§6.7: with among: owned, rule 3 ranks only D, which is then the newest it owns: kept."""
    imported = import_ecr(ALL_IMAGES_B, repository="exact:my-repo", exact=True)
    tree = imported.tree
    tree["policies"][0]["rules"][2]["when"]["rank"]["among"] = "owned"
    layout = Layout(tmp_path / "store")
    digests = {
        n: layout.push("my-repo", tiny(f"ecr-{n}"), tags, age=age)
        for n, (tags, age) in ALL_IMAGES_B_IMAGES.items()
    }
    assert names_of(deleted_digests(evaluate(policy(tree), layout)), digests) == {"A", "B"}


def test_ecr_importer_enforces_ecr_constraints() -> None:
    from regsweep.retention import PolicyError

    bad = {
        "rules": [
            _ecr_rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
            _ecr_rule(
                2,
                {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["a"],
                    "tagPatternList": ["a*"],
                    "countType": "sinceImagePushed",
                    "countNumber": 0,
                },
            ),
        ]
    }
    with pytest.raises(PolicyError) as e:
        import_ecr(bad)
    messages = "\n".join(i.format("ecr.json") for i in e.value.issues)
    assert "tagPrefixList or tagPatternList, not both" in messages
    assert "rules[1].selection.countNumber" in messages
    assert "rules[1].selection.countUnit" in messages
    assert "tagStatus any rule must have the highest rulePriority" in messages


def test_ecr_archive_rules_become_keep_rules_that_still_own() -> None:
    ecr = {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["prod*"],
                    "countType": "sinceImagePulled",
                    "countUnit": "days",
                    "countNumber": 30,
                },
                "action": {"type": "transition", "targetStorageClass": "archive"},
            },
            _ecr_rule(2, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
        ]
    }
    imported = import_ecr(ecr)
    rules = imported.tree["policies"][0]["rules"]
    assert rules[0]["action"] == "keep" and "when" not in rules[0]
    assert any("unsupported (archive tier)" in w for w in imported.warnings)
    policy(imported.tree)  # valid


# -- GitLab ------------------------------------------------------------------------------------------

GITLAB_SETTINGS = {
    "cadence": "1d",
    "enabled": True,
    "keep_n": 1,
    "older_than": "7d",
    "name_regex_delete": ".*",
    "name_regex_keep": "production-.*",
}
GITLAB_TAGS = {
    "latest": timedelta(hours=2),
    "production-v44": 3 * DAY,
    "production-v43": 6 * DAY,
    "production-v42": 11 * DAY,
    "dev-v44": 2 * DAY,
    "dev-v43": 5 * DAY,
    "dev-v42": 10 * DAY,
    "v44": 1 * DAY,
    "v43": 12 * DAY,
    "v42": 20 * DAY,
}


def test_gitlab_workflow_example(tmp_path: Path) -> None:
    imported = import_gitlab(
        {"container_expiration_policy": GITLAB_SETTINGS}, repository="glob:**", exact=True
    )
    pf = loads_policy(imported.to_yaml())
    layout = Layout(tmp_path / "store")
    for tag, age in GITLAB_TAGS.items():
        layout.push("group/project", tiny(f"gl-{tag}"), [tag], age=age)
    result = evaluate(pf, layout)
    assert deleted_tags(result) == {"dev-v42", "v43", "v42"}
    assert kept_tags(result) == set(GITLAB_TAGS) - {"dev-v42", "v43", "v42"}


def test_gitlab_tag_unit_keeps_a_digest_that_is_still_tagged(tmp_path: Path) -> None:
    """GitLab deletes tags, not images: dev-v42 goes, its digest stays under production-v42."""
    pf = loads_policy(import_gitlab(GITLAB_SETTINGS, exact=True).to_yaml())
    layout = Layout(tmp_path / "store")
    shared = tiny("shared")
    layout.push("group/project", shared, ["production-v42"], age=11 * DAY)
    layout.push("group/project", shared, ["dev-v42"], age=10 * DAY)
    layout.push("group/project", tiny("newer"), ["dev-v43"], age=5 * DAY)  # takes the keep_n slot
    result = evaluate(pf, layout)
    assert deleted_tags(result) == {"dev-v42"}
    assert kept_tags(result) == {"production-v42", "dev-v43"}
