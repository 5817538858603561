"""Plan, apply and retire definitions against the registry, and the check every read and write runs.

The check compares a definition's fingerprint with the applied record once per
registry version and process (a set of checked fingerprints), so the hot paths
pay a set lookup. Another process may apply or retire at any time: every check
first asks the registry for its Delta version (an incremental log read), and the
online path asks at most every `FEATURE_PLATFORM_REGISTRY_CHECK_S` seconds (a stat of
the next commit file, or an S3 HEAD).
"""

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from feature_platform.definitions.changes import AppliedState, Plan, PlanItem, plan_changes, reads_group, schema_changes
from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.definitions.records import group_from_record, group_record, view_record
from feature_platform.definitions.references import Catalog
from feature_platform.definitions.settings import seconds_setting
from feature_platform.errors import ArgumentError, DefinitionError, DefinitionMismatchError, FeatureReferenceError, RegistryError, RegistryStorageError
from feature_platform.offline.registry import RegistryConflict, RegistryStore, Snapshot
from feature_platform.offline.store import OfflineStore
from feature_platform.online.store import OnlineStore
from feature_platform.retrieval.training import list_training_datasets

APPLY_ATTEMPTS = 5
PLAN_HINT = "run `feature-platform plan` to see the difference, then `feature-platform apply`"
REGISTRY_CHECK_S = 1.0

# (registry uri, registry version, kind, name, version, fingerprint) of every definition this process found applied.
_CHECKED: set[tuple[str, int | None, str, str, int, str]] = set()


def registry_check_s() -> float:
    """How stale an online read's view of the registry may be: `FEATURE_PLATFORM_REGISTRY_CHECK_S`, default 1 second."""
    return seconds_setting("FEATURE_PLATFORM_REGISTRY_CHECK_S", REGISTRY_CHECK_S, error=ArgumentError, allow_zero=True)


class ApplyRefused(DefinitionError):
    """`apply` refused: the plan has incompatible changes; nothing was applied."""


class AppliedDefinitions:
    """The registry of one project as a store sees it: the applied state, kept current, and the checks."""

    def __init__(self, registry: RegistryStore) -> None:
        self.store = registry
        self._snapshot: Snapshot | None = None
        self._probed_at = float("-inf")
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._fingerprints: dict[int, tuple[object, str]] = {}

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the applied state this process sees changes (to drop what was derived from it)."""
        self._listeners.append(listener)

    def snapshot(self, *, refresh: bool = False) -> Snapshot:
        if self._snapshot is None or refresh:
            self.remember(self.store.load())
        assert self._snapshot is not None
        return self._snapshot

    def current(self, max_age_s: float = 0.0) -> None:
        """Reload the applied state if another process changed the registry, unless this was asked within `max_age_s`."""
        if self._snapshot is None or time.monotonic() - self._probed_at < max_age_s:
            return  # nothing read yet (the first check loads it), or asked recently enough
        with self._lock:
            probed_at = time.monotonic()
            version = self.store.latest_version(self._snapshot.version)
            self._probed_at = probed_at
            if version == self._snapshot.version:
                return
        self.snapshot(refresh=True)

    def view_versions(self) -> dict[str, Mapping[str, int]]:
        """The group versions each applied view recorded (what unpinned view references read)."""
        return {name: record["group_versions"] for name, record in self.snapshot().state.views.items()}

    def _fingerprint(self, definition: object, compute: Any) -> str:
        cached = self._fingerprints.get(id(definition))
        if cached is None or cached[0] is not definition:
            cached = self._fingerprints[id(definition)] = (definition, compute())
        return cached[1]

    def require_group(self, group: FeatureGroup) -> None:
        """Raise DefinitionMismatchError unless exactly this group version is applied (and not retired) now."""
        fingerprint = self._fingerprint(group, lambda: group_record(group)["fingerprint"])
        try:
            self.current()
            snapshot = self.snapshot()
        except RegistryStorageError as exc:
            raise RegistryStorageError(f"feature group '{group.name}' v{group.version}: {exc}") from None
        _require(self.store.uri, snapshot, ("group", group.name, group.version, fingerprint), lambda state: _group_problem(state, group))

    def require_view(self, view: FeatureView, group_versions: Mapping[str, int]) -> None:
        """Raise DefinitionMismatchError unless this view is applied reading these group versions now."""
        record = view_record(view, group_versions)
        self.current()
        what = ("view", view.name, view.version, f"{record['fingerprint']}{record['group_versions']}")
        _require(self.store.uri, self.snapshot(), what, lambda state: _view_problem(state, record))

    def remember(self, snapshot: Snapshot) -> None:
        """Take `snapshot` as the applied state (read, or just committed by this process) and tell the listeners."""
        changed = self._snapshot is not None and self._snapshot.version != snapshot.version
        self._snapshot = snapshot
        self._probed_at = time.monotonic()
        if changed:
            for listener in self._listeners:
                listener()


def _require(uri: str, snapshot: Snapshot, what: tuple[str, str, int, str], problem_of: Callable[[AppliedState], str | None]) -> None:
    """Raise DefinitionMismatchError with the problem `problem_of` finds in the state, unless this process checked it already."""
    key = (uri, snapshot.version, *what)
    if key in _CHECKED:
        return
    problem = problem_of(snapshot.state)
    if problem:
        raise DefinitionMismatchError(problem)
    _CHECKED.add(key)


def _group_problem(state: AppliedState, group: FeatureGroup) -> str | None:
    entry = state.entry(group.name, group.version)
    where = f"feature group '{group.name}' v{group.version}"
    if entry is None:
        applied = sorted(state.groups.get(group.name, {}))
        known = f" (applied versions: {applied})" if applied else ""
        return f"{where} is not applied yet{known}: {PLAN_HINT}"
    if entry["retired"]:
        return (
            f"{where} was retired: its online keys are gone; define version={max(state.groups[group.name]) + 1} and apply it "
            "(a long-running process, such as a feature server, must load definitions that no longer read it)"
        )
    record = group_record(group)
    if entry["record"]["fingerprint"] == record["fingerprint"]:
        return None
    in_place, _, incompatible = schema_changes(entry["record"], record)
    return (
        f"{where} differs from what was applied ({'; '.join([*incompatible, *in_place]) or 'definition changed'}): {PLAN_HINT}. "
        "If another process applied newer definitions, update this code"
    )


def _view_problem(state: AppliedState, record: Mapping[str, Any]) -> str | None:
    applied = state.views.get(record["name"])
    where = f"feature view '{record['name']}' v{record['version']}"
    if applied is None:
        return f"{where} is not applied yet: {PLAN_HINT}"
    if applied["fingerprint"] != record["fingerprint"]:
        return f"{where} differs from what was applied: {PLAN_HINT}"
    if applied["group_versions"] != record["group_versions"]:
        return (
            f"{where} was applied reading {applied['group_versions']}, this request reads {record['group_versions']}: {PLAN_HINT}"
        )
    return None


def make_plan(catalog: Catalog, offline: OfflineStore, state: AppliedState) -> Plan:
    """What apply would do: definitions against the state, tables of unrecorded groups, and the training manifests."""
    stored = {
        (name, version): offline.stored_columns(group)
        for name, versions in catalog.versions.items()
        for version, group in versions.items()
        if state.entry(name, version) is None
    }
    return plan_changes(state, catalog, stored, list_training_datasets(offline))


def apply(catalog: Catalog, offline: OfflineStore, applied: AppliedDefinitions) -> Plan:
    """Record the definitions and evolve tables in place; refuses (ApplyRefused) with the plan when a change needs a version.

    Tables are evolved before the registry commit, and adding a column that is
    already there is a no-op: an apply killed in between is completed by the next one.
    """
    for _ in range(APPLY_ATTEMPTS):
        snapshot = applied.snapshot(refresh=True)
        plan = make_plan(catalog, offline, snapshot.state)
        if plan.refused:
            raise ApplyRefused(f"apply refused, nothing was applied:\n{plan.render()}")
        if not plan.changes:
            return plan
        for item in plan.changes:
            if item.added_features:
                offline.add_features(catalog.group(item.name, item.version), list(item.added_features))
        try:
            version = applied.store.commit(
                plan.next_state, based_on=snapshot.version, action="apply", changes=[i.as_dict() for i in plan.changes]
            )
        except RegistryConflict:
            continue
        applied.remember(Snapshot(plan.next_state, version))
        return plan
    raise RegistryError(f"the registry at {applied.store.uri} changed under {APPLY_ATTEMPTS} attempts to apply; run apply again")


@dataclass(frozen=True)
class Retirement:
    """What retiring a group version did (or, with dry_run, would do)."""

    group: str
    version: int
    online_keys_deleted: int
    offline_table: str
    training_datasets: list[str]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def retire(
    catalog: Catalog,
    offline: OfflineStore,
    online: "OnlineStore | None",
    applied: AppliedDefinitions,
    name: str,
    version: int,
    *,
    delete_offline: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> Retirement:
    """Mark a group version retired and remove its online keys; its offline table only when asked.

    Refused while an applied view reads it, and deleting the table while a training
    dataset manifest references it, unless `force`.
    """
    for _ in range(APPLY_ATTEMPTS):
        snapshot = applied.snapshot(refresh=True)
        entry = snapshot.state.entry(name, version)
        if entry is None:
            raise FeatureReferenceError(
                f"feature group '{name}' v{version} is not in the registry; applied versions: {sorted(snapshot.state.groups.get(name, {}))}"
            )
        views = [v for v, r in sorted(snapshot.state.views.items()) if r["group_versions"].get(name) == version]
        if views and not force:
            raise ApplyRefused(
                f"feature group '{name}' v{version} is read by views {views}; bump their version (or pin another group version) "
                "and apply before retiring it, or pass --force"
            )
        datasets = [f"{m['name']} v{m['version']}" for m in list_training_datasets(offline) if reads_group(m, name, version)]
        if delete_offline and datasets and not force:
            raise ApplyRefused(
                f"feature group '{name}' v{version}: its offline table is read by training datasets {datasets}, which could no "
                "longer be rebuilt; keep the table (leave out --delete-offline) or pass --force to delete it anyway"
            )
        group = catalog.versions.get(name, {}).get(version) or group_from_record(entry["record"])
        table = "deleted" if delete_offline else "kept"
        if dry_run:
            return Retirement(name, version, 0, f"would be {table}", datasets, True)
        if not entry["retired"]:
            state = AppliedState({n: dict(vs) for n, vs in snapshot.state.groups.items()}, dict(snapshot.state.views))
            state.groups[name][version] = {**entry, "retired": True}
            change = PlanItem("group", name, version, "retire", (f"offline table {table}",))
            try:
                sequence = applied.store.commit(state, based_on=snapshot.version, action="retire", changes=[change.as_dict()])
            except RegistryConflict:
                continue
            applied.remember(Snapshot(state, sequence))
        # After the record: a retire killed here is finished by running it again.
        deleted = online.delete_group(group) if online is not None and group.online else 0
        if delete_offline:
            offline.delete_table(group)
        return Retirement(name, version, deleted, table, datasets, False)
    raise RegistryError(f"the registry at {applied.store.uri} changed under {APPLY_ATTEMPTS} attempts to retire; run retire again")
