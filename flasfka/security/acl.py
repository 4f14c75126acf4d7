"""ACL rules: which principal may produce, consume or create on which topics and groups.

Rules are checked in order and the first whose principal, topic and group patterns (shell
style, ``fnmatch``, case-sensitive) all match decides: the operation is allowed if the rule
lists it. No rule matching means denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

#: The operations a rule can allow.
OPERATIONS = ("produce", "consume", "create")
_KEYS = {"principal", "topics", "groups", "allow"}


class BadRule(ValueError):
    """An ACL entry that is not a rule (the message says which field is wrong)."""


@dataclass(frozen=True)
class Rule:
    """One ACL entry."""

    principal: str
    topics: str
    groups: str
    allow: frozenset[str]

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Rule:
        """A rule from a config dict; BadRule says what is wrong."""
        if not isinstance(entry, Mapping):
            raise BadRule("each entry must be a dict")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise BadRule(f"unknown field {unknown[0]!r} (use {', '.join(sorted(_KEYS))})")
        for name in ("principal", "topics"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise BadRule(f"{name!r} must be a non-empty string pattern")
        groups = entry.get("groups", "*")
        if not isinstance(groups, str) or not groups:
            raise BadRule("'groups' must be a non-empty string pattern")
        allow = entry.get("allow")
        if not isinstance(allow, (list, tuple)) or not all(a in OPERATIONS for a in allow):
            raise BadRule(f"'allow' must be a list of {', '.join(OPERATIONS)}")
        return cls(entry["principal"], entry["topics"], groups, frozenset(allow))

    def matches(self, principal: str, topic: str, group: str | None) -> bool:
        """Whether this rule speaks for principal on topic (and group, for a consume)."""
        return (
            fnmatchcase(principal, self.principal)
            and fnmatchcase(topic, self.topics)
            and (group is None or fnmatchcase(group, self.groups))
        )


class Acl:
    """The ordered rules of the config."""

    #: Decisions remembered (the pattern matching runs once per principal, topic, group).
    CACHE_SIZE = 4096

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules = tuple(rules)
        self._decided: dict[tuple[str, str, str, str | None], bool] = {}

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]]) -> Acl:
        """The ACL of the config's ACL list."""
        return cls(Rule.from_config(entry) for entry in entries)

    def allows(self, principal: str, operation: str, topic: str, group: str | None) -> bool:
        """Whether the first rule matching principal, topic and group allows operation."""
        question = (principal, operation, topic, group)
        answer = self._decided.get(question)
        if answer is None:
            answer = self._decide(principal, operation, topic, group)
            if len(self._decided) >= self.CACHE_SIZE:
                self._decided.clear()  # bounded; refilled by the names in use
            self._decided[question] = answer
        return answer

    def _decide(self, principal: str, operation: str, topic: str, group: str | None) -> bool:
        for rule in self._rules:
            if rule.matches(principal, topic, group):
                return operation in rule.allow
        return False
