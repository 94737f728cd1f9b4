"""Retention policies: which tags and untagged manifests go (retention-policy.md §6).

``load_policy(path)`` reads and validates a YAML or TOML policy; ``evaluate_policy(policy,
snapshot, store, now)`` decides every candidate and returns a ``RetentionResult`` whose
``expired_tags`` and ``kept_untagged`` plug into ``gc.mark.mark`` and ``gc.plan.make_plan``.
``lint_policy`` warns about dangerous rules; ``import_ecr``/``import_gitlab`` convert other
registries' settings.
"""

from regsweep.retention.evaluate import DECISIONS_SCHEMA, RetentionResult, evaluate_policy
from regsweep.retention.importers import IMPORTERS, Imported, import_ecr, import_gitlab
from regsweep.retention.lint import lint_policy, lint_result
from regsweep.retention.load import load_policy, loads_policy
from regsweep.retention.schema import Issue, PolicyError, PolicyFile, parse_policy

__all__ = [
    "DECISIONS_SCHEMA",
    "IMPORTERS",
    "Imported",
    "Issue",
    "PolicyError",
    "PolicyFile",
    "RetentionResult",
    "evaluate_policy",
    "import_ecr",
    "import_gitlab",
    "lint_policy",
    "lint_result",
    "load_policy",
    "loads_policy",
    "parse_policy",
]
