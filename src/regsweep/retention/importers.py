"""Convert other registries' retention settings into our policy tree (retention-policy.md §6.5).

- ``import_ecr``: an AWS ECR lifecycle policy (the JSON ``put-lifecycle-policy`` takes), checked
  against ECR's own constraints first.
- ``import_gitlab``: GitLab cleanup-policy settings (the project API's
  ``container_expiration_policy`` object, or just its fields), as the 3/4-rule encoding.

Each returns an ``Imported``: the tree (write it with ``to_yaml()``; ``parse_policy`` accepts
it) and warnings about what could not be carried over. With ``exact=True`` the policy turns off
our own safety margins (``min_age``, guards) so it reproduces the vendor's decisions exactly,
as the conformance tests do; by default they stay on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from regsweep.retention.patterns import PatternError, compile_pattern
from regsweep.retention.schema import Issue, PolicyError

EXACT_SETTINGS: dict[str, Any] = {
    "min_age": "0s",
    "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0},
}


@dataclass
class Imported:
    tree: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    origin: str = ""

    def to_yaml(self) -> str:
        head = [f"# {self.origin}, converted by `regsweep policy import`"] if self.origin else []
        head += [f"# warning: {w}" for w in self.warnings]
        body = yaml.safe_dump(self.tree, sort_keys=False, width=100, allow_unicode=True)
        return "\n".join([*head, body]) if head else body


def _err(source: str, issues: list[Issue]) -> PolicyError:
    return PolicyError(source, issues)


# -- ECR -------------------------------------------------------------------------------------------

_ECR_SELECTION = (
    "tagStatus",
    "tagPatternList",
    "tagPrefixList",
    "storageClass",
    "countType",
    "countUnit",
    "countNumber",
)
_ECR_COUNT_TYPES = (
    "imageCountMoreThan",
    "sinceImagePushed",
    "sinceImagePulled",
    "sinceImageTransitioned",
)


def import_ecr(
    doc: Any,
    *,
    repository: str = "glob:**",
    name: str = "ecr-import",
    exact: bool = False,
    source: str = "<ecr>",
) -> Imported:
    """ECR lifecycle policy -> policy ``unit: artifact, precedence: first-match``; rules sorted
    by ``rulePriority``. Archive-tier rules (``transition``, ``sinceImagePulled``,
    ``sinceImageTransitioned``, ``storageClass: archive``) have no meaning for storage GC: each
    becomes a *keep* rule with the same selection, so that, as in ECR, lower-priority rules
    still cannot expire what it selects. Raises PolicyError for anything ECR would refuse."""
    issues: list[Issue] = []
    warnings: list[str] = []

    def bad(path: str, msg: str) -> None:
        issues.append(Issue(path, None, msg))

    if not isinstance(doc, Mapping) or not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise _err(
            source, [Issue("rules", None, "an ECR lifecycle policy needs a non-empty rules list")]
        )
    parsed: list[tuple[int, dict[str, Any]]] = []
    priorities: dict[int, int] = {}
    untagged_rules: dict[str, int] = {}
    tag_sets: dict[tuple[str, frozenset[str]], int] = {}
    for i, raw in enumerate(doc["rules"]):
        p = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            bad(p, "a rule must be an object")
            continue
        for k in raw:
            if k not in ("rulePriority", "description", "selection", "action"):
                bad(f"{p}.{k}", f"unknown ECR rule field {k!r}")
        prio = raw.get("rulePriority")
        if isinstance(prio, bool) or not isinstance(prio, int) or prio < 1:
            bad(f"{p}.rulePriority", f"rulePriority must be a positive integer, got {prio!r}")
            continue
        if prio in priorities:
            bad(
                f"{p}.rulePriority", f"rulePriority {prio} is used by rules[{priorities[prio]}] too"
            )
        priorities[prio] = i
        sel = raw.get("selection")
        if not isinstance(sel, Mapping):
            bad(f"{p}.selection", "selection must be an object")
            continue
        for k in sel:
            if k not in _ECR_SELECTION:
                bad(f"{p}.selection.{k}", f"unknown ECR selection field {k!r}")
        status = sel.get("tagStatus")
        if status not in ("tagged", "untagged", "any"):
            bad(
                f"{p}.selection.tagStatus",
                f"tagStatus must be tagged, untagged or any, got {status!r}",
            )
        prefixes, patterns = sel.get("tagPrefixList"), sel.get("tagPatternList")
        if prefixes is not None and patterns is not None:
            bad(f"{p}.selection", "a rule may use tagPrefixList or tagPatternList, not both")
        lst = prefixes if prefixes is not None else patterns
        list_name = "tagPrefixList" if prefixes is not None else "tagPatternList"
        if status == "tagged" and not lst:
            bad(
                f"{p}.selection",
                "tagStatus tagged needs a non-empty tagPrefixList or tagPatternList",
            )
        if status in ("untagged", "any") and lst is not None:
            bad(f"{p}.selection.{list_name}", f"tagStatus {status} must omit tag lists")
        if lst is not None and (
            not isinstance(lst, list) or not all(isinstance(x, str) and x for x in lst)
        ):
            bad(f"{p}.selection.{list_name}", "must be a list of non-empty strings")
            lst = None
        if patterns is not None and lst:
            for j, pat in enumerate(lst):
                if pat.count("*") > 4:
                    bad(f"{p}.selection.tagPatternList[{j}]", "at most 4 '*' wildcards per pattern")
        storage = sel.get("storageClass", "standard")
        if storage not in ("standard", "archive"):
            bad(
                f"{p}.selection.storageClass",
                f"storageClass must be standard or archive, got {storage!r}",
            )
        ctype = sel.get("countType")
        if ctype not in _ECR_COUNT_TYPES:
            bad(
                f"{p}.selection.countType",
                f"countType must be one of {', '.join(_ECR_COUNT_TYPES)}, got {ctype!r}",
            )
        unit = sel.get("countUnit")
        if ctype == "imageCountMoreThan" and unit is not None:
            bad(f"{p}.selection.countUnit", "countUnit is only allowed with the since* count types")
        if isinstance(ctype, str) and ctype.startswith("since") and unit != "days":
            bad(f"{p}.selection.countUnit", f"{ctype} needs countUnit: days")
        num = sel.get("countNumber")
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            bad(
                f"{p}.selection.countNumber",
                f"countNumber must be a positive integer (0 is not accepted), got {num!r}",
            )
        if ctype == "sinceImageTransitioned" and storage != "archive":
            bad(f"{p}.selection", "sinceImageTransitioned requires storageClass: archive")
        action = raw.get("action")
        atype = action.get("type") if isinstance(action, Mapping) else None
        if atype not in ("expire", "transition"):
            bad(f"{p}.action.type", f"action type must be expire or transition, got {atype!r}")
        if status == "untagged":
            if storage in untagged_rules:
                bad(
                    p,
                    f"only one rule per storage class may select untagged images (also rules[{untagged_rules[storage]}])",
                )
            untagged_rules[storage] = i
        if lst:
            key = (str(storage), frozenset(lst))
            if key in tag_sets:
                bad(
                    p,
                    f"rules selecting storage class {storage} must have unique tag lists (same as rules[{tag_sets[key]}])",
                )
            tag_sets[key] = i
        parsed.append((prio if isinstance(prio, int) else 0, dict(raw)))
    anys = [prio for prio, r in parsed if r.get("selection", {}).get("tagStatus") == "any"]
    if anys and parsed and max(anys) != max(prio for prio, _ in parsed):
        bad("rules", "a tagStatus any rule must have the highest rulePriority (be evaluated last)")
    if issues:
        raise _err(source, issues)

    rules: list[dict[str, Any]] = []
    for prio, raw in sorted(parsed, key=lambda pr: pr[0]):
        sel = raw["selection"]
        status = sel["tagStatus"]
        select: dict[str, Any] = {"state": status}
        if sel.get("tagPrefixList"):
            select["tags"] = {"all": [f"prefix:{x}" for x in sel["tagPrefixList"]]}
        elif sel.get("tagPatternList"):
            select["tags"] = {"all": [_ecr_glob(x) for x in sel["tagPatternList"]]}
        ctype, num = sel["countType"], sel["countNumber"]
        rule: dict[str, Any] = {"name": f"p{prio}"}
        if raw.get("description"):
            rule["description"] = str(raw["description"])
        archive = (
            raw["action"]["type"] == "transition"
            or sel.get("storageClass", "standard") == "archive"
            or ctype in ("sinceImagePulled", "sinceImageTransitioned")
        )
        if archive:
            warnings.append(
                f"rule p{prio}: unsupported (archive tier); imported as a keep rule with the same "
                "selection, so lower-priority rules still cannot expire what it selects"
            )
            rule.update(action="keep", select=select)
        else:
            rule.update(action="delete", select=select)
            if ctype == "imageCountMoreThan":
                rule["when"] = {"rank": {"beyond": num, "by": "pushed", "among": "selected"}}
            else:
                rule["when"] = {"older_than": {"age": f"{num}d", "time": "pushed"}}
        rules.append(rule)
    tree: dict[str, Any] = {"version": 1}
    if exact:
        tree["settings"] = dict(EXACT_SETTINGS)
    tree["policies"] = [
        {
            "name": name,
            "repositories": [repository],
            "unit": "artifact",
            "precedence": "first-match",
            "unmatched": "keep",
            "sibling_keep": True,
            "rules": rules,
        }
    ]
    warnings.append(
        "ECR expires whole images: a tag you want to keep dies with an image a higher-priority "
        "rule expires (aws/containers-roadmap#2568); add protect.tags for such tags"
    )
    return Imported(tree, warnings, "imported from an ECR lifecycle policy")


def _ecr_glob(pattern: str) -> str:
    """ECR's only wildcard is ``*``; anything our glob would read specially is escaped."""
    return "glob:" + re.sub(r"([?\[\]{}\\,])", r"\\\1", pattern)


# -- GitLab ----------------------------------------------------------------------------------------

_GITLAB_KEEP_N = (1, 5, 10, 25, 50, 100)
_GITLAB_OLDER = ("7d", "14d", "30d", "90d")
_GITLAB_CADENCE = ("1d", "7d", "14d", "1month", "3month")
_GITLAB_KEYS = (
    "enabled",
    "cadence",
    "keep_n",
    "older_than",
    "name_regex",
    "name_regex_delete",
    "name_regex_keep",
    "next_run_at",
)


def import_gitlab(
    doc: Any,
    *,
    repository: str = "glob:**",
    name: str = "gitlab-import",
    exact: bool = False,
    source: str = "<gitlab>",
) -> Imported:
    """GitLab cleanup policy -> policy ``unit: tag, keep-wins, unmatched: keep,
    sibling_keep: false`` with ``latest`` protected: keep the keep-regex; keep the ``keep_n``
    newest of the rest that match the delete regex; delete those older than ``older_than``.
    Regexes are anchored by GitLab (``\\A...\\Z``), as our ``re:`` always is."""
    if isinstance(doc, Mapping) and isinstance(doc.get("container_expiration_policy"), Mapping):
        doc = doc["container_expiration_policy"]
    if not isinstance(doc, Mapping):
        raise _err(source, [Issue("", None, "expected GitLab cleanup-policy settings (an object)")])
    issues: list[Issue] = []
    warnings: list[str] = []
    for k in doc:
        if k not in _GITLAB_KEYS:
            warnings.append(f"ignored unknown field {k!r}")
    keep_n = doc.get("keep_n")
    if keep_n is not None and keep_n not in _GITLAB_KEEP_N:
        issues.append(
            Issue("keep_n", None, f"keep_n must be one of {_GITLAB_KEEP_N} or null, got {keep_n!r}")
        )
    older = doc.get("older_than")
    if older is not None and older not in _GITLAB_OLDER:
        issues.append(
            Issue(
                "older_than",
                None,
                f"older_than must be one of {', '.join(_GITLAB_OLDER)} or null, got {older!r}",
            )
        )
    cadence = doc.get("cadence")
    if cadence is not None and cadence not in _GITLAB_CADENCE:
        issues.append(
            Issue(
                "cadence",
                None,
                f"cadence must be one of {', '.join(_GITLAB_CADENCE)}, got {cadence!r}",
            )
        )
    delete_re = doc.get("name_regex_delete") or doc.get("name_regex")
    keep_re = doc.get("name_regex_keep")
    for field_, rx in (("name_regex_delete", delete_re), ("name_regex_keep", keep_re)):
        if rx is None:
            continue
        if not isinstance(rx, str):
            issues.append(Issue(field_, None, "must be a string"))
            continue
        try:
            compile_pattern(f"re:{rx}")
        except PatternError as e:
            issues.append(Issue(field_, None, str(e)))
    if issues:
        raise _err(source, issues)
    if doc.get("enabled") is False:
        warnings.append("the GitLab policy is disabled (enabled: false); imported anyway")
    if cadence:
        warnings.append(f"cadence {cadence} is a schedule: run `regsweep gc --policy` that often")

    rules: list[dict[str, Any]] = []
    if keep_re:
        rules.append(
            {"name": "keep-regex", "action": "keep", "select": {"tags": {"any": [f"re:{keep_re}"]}}}
        )
    if delete_re:
        none = ([f"re:{keep_re}"] if keep_re else []) + ["exact:latest"]
        select = {"tags": {"any": [f"re:{delete_re}"], "none": none}}
        if keep_n:
            rules.append(
                {
                    "name": "keep-n",
                    "action": "keep",
                    "select": select,
                    "when": {"rank": {"top": keep_n, "by": "pushed", "among": "selected"}},
                }
            )
        remove: dict[str, Any] = {"name": "remove", "action": "delete", "select": select}
        if older:
            remove["when"] = {"older_than": {"age": older, "time": "pushed"}}
        rules.append(remove)
    else:
        warnings.append(
            "no name_regex_delete: GitLab deletes nothing, and neither will this policy"
        )
    tree: dict[str, Any] = {"version": 1}
    if exact:
        tree["settings"] = dict(EXACT_SETTINGS)
    tree["protect"] = {"tags": ["exact:latest"]}
    tree["policies"] = [
        {
            "name": name,
            "repositories": [repository],
            "unit": "tag",
            "precedence": "keep-wins",
            "unmatched": "keep",
            "sibling_keep": False,
            "rules": rules,
        }
    ]
    return Imported(tree, warnings, "imported from GitLab cleanup-policy settings")


IMPORTERS = {"ecr": import_ecr, "gitlab": import_gitlab}
