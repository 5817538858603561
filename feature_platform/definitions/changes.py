"""What `apply` would do: the repository's definitions compared with the applied record, object by object.

Compatible changes apply in place: documentation, owner, tags, ttl, rules,
partitions' range, the online flag, and features appended at the end (old rows
read them as null, offline and online). Anything that changes how stored rows
are read (a removed, reordered, inserted or retyped feature, other keys or
times) is refused unless the group's version is bumped, which makes a new table
beside the old one. Views keep the group versions they recorded until their own
version is bumped or a reference pins another version.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.definitions.records import GroupRecord, group_record, view_record
from feature_platform.definitions.references import Catalog
from feature_platform.errors import FeatureReferenceError, RegistryError

FORMAT = 1
IN_PLACE_FIELDS = ("description", "owner", "tags", "ttl_seconds", "rules", "partitions", "online", "entities")


@dataclass
class AppliedState:
    """The registry's content: every applied group version (with its retired flag) and view."""

    groups: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def entry(self, name: str, version: int) -> dict[str, Any] | None:
        return self.groups.get(name, {}).get(version)

    def to_json(self) -> dict[str, Any]:
        groups = {n: {str(v): e for v, e in sorted(vs.items())} for n, vs in sorted(self.groups.items())}
        return {"format": FORMAT, "groups": groups, "views": dict(sorted(self.views.items()))}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "AppliedState":
        """Parse a stored state, refusing anything that is not one (a registry edited by hand, a foreign file)."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"expected a JSON object with format {FORMAT}")
            groups: dict[str, dict[int, dict[str, Any]]] = {}
            for name, versions in data["groups"].items():
                for version, entry in versions.items():
                    record = entry["record"]
                    if record["name"] != name or int(record["version"]) != int(version) or not isinstance(entry["retired"], bool):
                        raise ValueError(f"group entry '{name}' v{version} does not match its record")
                    for key in ("keys", "features", "event_time", "fingerprint", "schema_fingerprint", "layouts"):
                        if key not in record:
                            raise ValueError(f"group '{name}' v{version} has no '{key}'")
                    if not all(isinstance(f["name"], str) and isinstance(f["dtype"], str) for f in record["features"]):
                        raise ValueError(f"group '{name}' v{version} has malformed features")
                    groups.setdefault(name, {})[int(version)] = entry
            views = {}
            for name, record in data["views"].items():
                if record["name"] != name or not isinstance(record["group_versions"], dict):
                    raise ValueError(f"view entry '{name}' does not match its record")
                if not all(isinstance(v, int) for v in record["group_versions"].values()):
                    raise ValueError(f"view '{name}' has malformed group versions")
                views[name] = record
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryError(
                f"the registry at {where} holds a record that is not valid ({type(exc).__name__}: {exc}); it was changed "
                "outside feature-platform. Nothing was read or changed: restore its last good Delta version "
                "(`feature-platform registry-history` lists them) and run `plan` again"
            ) from None
        return cls(groups, views)


@dataclass(frozen=True)
class PlanItem:
    """One object's outcome: `create`, `no change`, `update in place`, `remove` (a view no longer defined),
    `keep` (a group version applied but no longer defined) or `refused`."""

    kind: str
    name: str
    version: int
    action: str
    details: tuple[str, ...] = ()
    added_features: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.action == "refused"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "action": self.action, "details": list(self.details)}


@dataclass(frozen=True)
class Plan:
    """Every object's outcome and the state `apply` would record."""

    items: tuple[PlanItem, ...]
    next_state: AppliedState

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if i.refused]

    @property
    def changes(self) -> list[PlanItem]:
        return [i for i in self.items if i.action in ("create", "update in place", "remove")]

    def render(self) -> str:
        lines = []
        for item in self.items:
            lines.append(f"{item.kind} {item.name} v{item.version}: {item.action}")
            lines += [f"    {d}" for d in item.details]
        if self.refused:
            lines.append(f"apply would refuse: {len(self.refused)} object(s) above need a new version (nothing was applied)")
        elif self.changes:
            lines.append(f"apply would change {len(self.changes)} object(s)")
        else:
            lines.append("no changes: the registry matches the definitions")
        return "\n".join(lines)


def entry_for(group: FeatureGroup, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """A group's registry entry, keeping the layouts earlier applies recorded."""
    record = group_record(group)
    layouts = list(previous["record"]["layouts"]) if previous else []
    if record["schema_fingerprint"] not in layouts:
        layouts.append(record["schema_fingerprint"])
    record["layouts"] = layouts
    return {"record": record, "retired": False}


def _columns(record: Mapping[str, Any]) -> list[str]:
    return [*record["keys"], record["event_time"], *([record["created_time"]] if record["created_time"] else [])]


def schema_changes(old: Mapping[str, Any], new: GroupRecord) -> tuple[list[str], list[str], list[str]]:
    """(in-place changes, appended feature names, incompatible changes) from an applied record to a definition."""
    incompatible = []
    if old["keys"] != new["keys"]:
        incompatible.append(f"join keys change from {old['keys']} to {new['keys']}")
    for name in ("event_time", "created_time"):
        if old[name] != new[name]:
            incompatible.append(f"{name} column changes from {old[name]!r} to {new[name]!r}")
    if old.get("stream") != new.get("stream"):
        # Online, a stream group's windows are sums of tiles laid out by its aggregations and kept for its
        # largest window: tiles written before cannot answer other aggregations, fields or windows.
        incompatible.append(f"changes its stream windows or fields ({_stream_summary(old.get('stream'))} -> "
                            f"{_stream_summary(new.get('stream'))}); the online tiles hold the old ones")
    before = [(f["name"], f["dtype"]) for f in old["features"]]
    after = [(f["name"], f["dtype"]) for f in new["features"]]
    types_before, types_after = dict(before), dict(after)
    removed = [n for n, _ in before if n not in types_after]
    retyped = [f"{n} {types_before[n]} -> {t}" for n, t in after if n in types_before and types_before[n] != t]
    if removed:
        incompatible.append(f"removes feature(s) {removed}")
    if retyped:
        incompatible.append(f"retypes feature(s) {retyped}; stored values would be cast")
    appended: list[str] = []
    if not removed and not retyped:
        if after[: len(before)] == before:
            appended = [n for n, _ in after[len(before):]]
        else:
            kept = [n for n, _ in after if n in types_before]
            if kept != [n for n, _ in before]:
                incompatible.append(f"reorders features: {[n for n, _ in before]} -> {kept}")
            inserted = [n for i, (n, _) in enumerate(after) if n not in types_before and i < len(after) - 1 and any(m in types_before for m, _ in after[i + 1:])]
            if inserted:
                incompatible.append(f"inserts feature(s) {inserted} before existing ones (new features go at the end)")
    in_place = [f"{f}: {old.get(f)!r} -> {new[f]!r}" for f in IN_PLACE_FIELDS if old.get(f) != new[f]]
    described = {f["name"]: f["description"] for f in old["features"]}
    in_place += [f"feature {f['name']} description changes" for f in new["features"] if described.get(f["name"], f["description"]) != f["description"]]
    if appended:
        in_place.append(f"adds nullable feature(s) {appended} at the end (rows written before read null, offline and online)")
    return in_place, appended, incompatible


def _stream_summary(stream: Mapping[str, Any] | None) -> str:
    if stream is None:
        return "none"
    windows = ", ".join(f"{name} ({function}{' of ' + column if column else ''})" for name, function, column, _ in stream["aggregations"])
    return f"fields {sorted(stream['fields'])}, windows {windows}, tile {stream['tile_seconds']:g} s"


def _stored_mismatch(group: FeatureGroup, columns: Mapping[str, str]) -> list[str]:
    expected = {f.name: str(f.type) for f in group.schema}
    if dict(columns) == expected:
        return []
    return [f"its table already exists with columns {dict(columns)}, which differ from the definition's {expected}"]


def plan_changes(
    state: AppliedState,
    catalog: Catalog,
    stored_columns: Mapping[tuple[str, int], Mapping[str, str] | None],
    manifests: Sequence[Mapping[str, Any]] = (),
) -> Plan:
    """Compare every defined group version and view with `state`; the plan says what apply records.

    `stored_columns` gives, for defined group versions the registry does not
    know, the columns of an existing table (None: no table).
    """
    items: list[PlanItem] = []
    groups = {n: dict(vs) for n, vs in state.groups.items()}
    for name, versions in sorted(catalog.versions.items()):
        for version, group in sorted(versions.items()):
            item, entry = _plan_group(state, group, stored_columns.get((name, version)), manifests, set(catalog.versions))
            items.append(item)
            if entry is not None:
                groups.setdefault(name, {})[version] = entry
    for name, versions in sorted(state.groups.items()):
        for version, entry in sorted(versions.items()):
            if version not in catalog.versions.get(name, {}) and not entry["retired"]:
                items.append(PlanItem("group", name, version, "keep", (
                    "applied but no longer defined: its table and online keys stay; "
                    f"`feature-platform retire {name} --version {version}` removes them",
                )))
    views = dict(state.views)
    for name, view in sorted(catalog.views.items()):
        item, record = _plan_view(state, catalog, view, groups)
        items.append(item)
        if record is not None:
            views[name] = record
    for name, record in sorted(state.views.items()):
        if name not in catalog.views:
            del views[name]
            items.append(PlanItem("view", name, record["version"], "remove", (
                "no longer defined: removed from the registry (training datasets of it can no longer be rebuilt)",
            )))
    return Plan(tuple(items), AppliedState(groups, views))


def _readers(state: AppliedState, name: str, version: int, manifests: Sequence[Mapping[str, Any]]) -> list[str]:
    views = [v for v, r in sorted(state.views.items()) if r["group_versions"].get(name) == version]
    datasets = [f"{m['name']} v{m['version']}" for m in manifests if reads_group(m, name, version)]
    lines = []
    if views:
        lines.append(f"views reading it: {views}")
    if datasets:
        lines.append(f"training datasets reading it: {datasets} (rebuilds keep reading their recorded Delta versions)")
    return lines


def reads_group(manifest: Mapping[str, Any], name: str, version: int) -> bool:
    """Whether a training dataset manifest read this group version."""
    return any(g["name"] == name and g["version"] == version for g in manifest.get("groups", []))


def _plan_group(
    state: AppliedState,
    group: FeatureGroup,
    stored: Mapping[str, str] | None,
    manifests: Sequence[Mapping[str, Any]],
    defined: set[str],
) -> tuple[PlanItem, dict[str, Any] | None]:
    name, version = group.name, group.version
    previous = state.entry(name, version)
    new = group_record(group)
    if previous is None:
        details = []
        if stored is not None:
            mismatch = _stored_mismatch(group, stored)
            if mismatch:
                return PlanItem("group", name, version, "refused", (*mismatch, f"bump the version of feature group '{name}' (version={version + 1}) for a new table")), None
            details.append("records its existing table, whose columns match")
        older = sorted(v for v in state.groups.get(name, {}) if v != version)
        if older:
            details.append(f"new version beside {[f'v{v}' for v in older]}: a new table and new online keys, empty until materialized")
            for v in older:
                keeping = [n for n, r in sorted(state.views.items()) if r["group_versions"].get(name) == v]
                if keeping:
                    details.append(f"views {keeping} keep reading v{v} until their version is bumped (or they pin '{name}@{version}:...')")
        renamed = [n for n, vs in state.groups.items() if n not in defined and any(
            e["record"]["schema_fingerprint"] == new["schema_fingerprint"] and not e["retired"] for e in vs.values())]
        if renamed:
            details.append(f"same schema as applied group(s) {sorted(renamed)}: a rename is a new group and the data does not follow "
                           "(materialize it again; the old group keeps its table until retired)")
        return PlanItem("group", name, version, "create", tuple(details)), entry_for(group, None)
    if previous["retired"]:
        return PlanItem("group", name, version, "refused", (
            f"v{version} was retired; define version={max(state.groups[name]) + 1} to start a new table",
        )), None
    if previous["record"]["fingerprint"] == new["fingerprint"]:
        return PlanItem("group", name, version, "no change"), None
    in_place, appended, incompatible = schema_changes(previous["record"], new)
    if incompatible:
        details = (*incompatible, f"refused in place: bump the version of feature group '{name}' (version={version + 1}) "
                   f"to write a new table beside v{version}", *_readers(state, name, version, manifests))
        return PlanItem("group", name, version, "refused", details), None
    details = (*in_place, *_readers(state, name, version, manifests))
    return PlanItem("group", name, version, "update in place", details, tuple(appended)), entry_for(group, previous)


def _plan_view(
    state: AppliedState, catalog: Catalog, view: FeatureView, groups: Mapping[str, Mapping[int, dict[str, Any]]]
) -> tuple[PlanItem, dict[str, Any] | None]:
    previous = state.views.get(view.name)
    versions = catalog.latest_versions(view)
    details = []
    if previous is not None and previous["version"] == view.version:
        for group_name, recorded in previous["group_versions"].items():
            if group_name in versions and versions[group_name] != recorded and not _pinned(view, group_name):
                versions[group_name] = recorded
                details.append(f"keeps reading {group_name} v{recorded} (bump the view's version to move to v{catalog.groups[group_name].version})")
    try:
        catalog.view_at(view, versions)
    except FeatureReferenceError as error:
        return PlanItem("view", view.name, view.version, "refused", (str(error),)), None
    for group_name, version in versions.items():
        entry = groups.get(group_name, {}).get(version)
        if entry is None or entry["retired"]:
            state_word = "retired" if entry else "not applied"
            return PlanItem("view", view.name, view.version, "refused", (
                f"reads feature group '{group_name}' v{version}, which is {state_word}",
            )), None
    record = view_record(view, versions)
    if previous is None:
        reads = ", ".join(f"{g} v{v}" for g, v in sorted(versions.items()))
        return PlanItem("view", view.name, view.version, "create", (f"reads {reads}", *details)), record
    if previous["fingerprint"] == record["fingerprint"] and previous["group_versions"] == record["group_versions"]:
        return PlanItem("view", view.name, view.version, "no change", tuple(details)), None
    if previous["version"] == view.version and previous["features"] != record["features"]:
        return PlanItem("view", view.name, view.version, "refused", (
            f"its features change from {previous['features']} to {record['features']}; bump the view's version "
            "(training datasets of this version must keep rebuilding the same columns)",
        )), None
    moved = [f"moves {g} v{previous['group_versions'].get(g)} -> v{v}" for g, v in sorted(versions.items()) if previous["group_versions"].get(g) != v]
    return PlanItem("view", view.name, view.version, "update in place", (*moved, *details)), record


def _pinned(view: FeatureView, group_name: str) -> bool:
    return any(r.startswith(f"{group_name}@") for r in view.features)
