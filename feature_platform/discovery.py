"""Discovery over a store's definitions: list, search, describe and lineage, as plain data.

The CLI renders these; a notebook or the HTTP server can call them too. No Dagster here:
lineage covers sources, groups, views and training datasets; the CLI adds the
Dagster asset graph (drift, online sync) when it has the repository's definitions.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.errors import FeatureReferenceError
from feature_platform.sources.landing import RawSource
from feature_platform.store import FeatureStore

# More facts for `describe` of a group (latest statistics, online status...): each returns a dict merged in.
GROUP_FACTS: list[Callable[[FeatureStore, FeatureGroup], dict[str, Any]]] = []


def training_datasets(store: FeatureStore) -> list[dict[str, Any]]:
    """Stored training datasets: name, version, view and the Delta version of each group read."""
    rows = []
    for manifest in store.list_training_datasets():
        rows.append(
            {
                "name": manifest.get("name", "?"),
                "version": manifest.get("version"),
                "view": manifest.get("view"),
                "delta_versions": manifest.get("group_versions", {}),
                "created": manifest.get("created_at"),
            }
        )
    return sorted(rows, key=lambda r: (str(r["name"]), str(r["version"])))


def list_all(store: FeatureStore) -> dict[str, list[dict[str, Any]]]:
    """Groups, views, raw sources and training datasets with their headline facts."""
    groups = [store.group(n) for n in store.list_groups()]
    return {
        "groups": [
            {
                "name": g.name,
                "version": g.version,
                "entities": [e.name for e in g.entities],
                "features": len(g.features),
                "owner": g.owner,
                "partitioned": g.partitions is not None,
                "tags": dict(g.tags),
            }
            for g in groups
        ],
        "views": [
            {"name": v.name, "version": v.version, "features": len(v.features) + sum(len(t.outputs) for t in v.on_demand), "owner": v.owner}
            for v in (store.catalog.view(n) for n in store.list_views())
        ],
        "sources": [{"name": s.name, "partitioned": s.partitions is not None, "owner": s.owner} for s in store.sources.values()],
        "training_datasets": training_datasets(store),
    }


@dataclass(frozen=True)
class SearchHit:
    """One definition matching a search: its kind, name, where the words matched and a score."""

    kind: str
    name: str
    matched: tuple[str, ...]
    description: str
    score: int = field(default=0)


def _fields(item: FeatureGroup | FeatureView | RawSource) -> dict[str, str]:
    """Searchable text of a definition, by field name."""
    fields = {"name": item.name, "description": item.description, "owner": item.owner}
    if isinstance(item, (FeatureGroup, FeatureView)):
        fields["tags"] = " ".join(f"{k}={v} {k} {v}" for k, v in item.tags.items())
    if isinstance(item, FeatureGroup):
        for feature in item.features:
            fields[f"feature {feature.name}"] = f"{feature.name} {feature.description}"
        fields["entities"] = " ".join([e.name for e in item.entities] + item.join_keys)
    if isinstance(item, FeatureView):
        fields["features"] = " ".join(item.features + tuple(f.name for t in item.on_demand for f in t.outputs))
    return fields


def search(store: FeatureStore, text: str) -> list[SearchHit]:
    """Definitions where every word of `text` appears (case-insensitive), best first; names weigh most."""
    words = [w for w in text.lower().split() if w]
    if not words:
        raise ValueError("search text is empty: give one or more words")
    items: list[tuple[str, Any]] = [("group", store.group(n)) for n in store.list_groups()]
    items += [("view", store.catalog.view(n)) for n in store.list_views()]
    items += [("source", s) for s in store.sources.values()]
    hits = []
    for kind, item in items:
        fields = {k: v.lower() for k, v in _fields(item).items()}
        if not all(any(w in v for v in fields.values()) for w in words):
            continue
        matched = tuple(k for k, v in fields.items() if any(w in v for w in words))
        score = sum(3 if k == "name" else 1 for k in matched)
        hits.append(SearchHit(kind, item.name, matched, item.description, score))
    return sorted(hits, key=lambda h: (-h.score, h.kind, h.name))


def find(store: FeatureStore, name: str) -> tuple[str, Any]:
    """The definition called `name`: ("group" | "view" | "source", definition)."""
    if name in store.catalog.groups:
        return "group", store.group(name)
    if name in store.catalog.views:
        return "view", store.catalog.view(name)
    if name in store.sources:
        return "source", store.sources[name]
    known = sorted([*store.catalog.groups, *store.catalog.views, *store.sources])
    raise FeatureReferenceError(f"no feature group, view or raw source is called '{name}'; known: {known}")


def describe_view(store: FeatureStore, view: FeatureView) -> dict[str, Any]:
    resolved = store.catalog.resolve_for_listing(view)
    return {
        "kind": "view",
        "name": view.name,
        "version": view.version,
        "description": view.description,
        "owner": view.owner,
        "tags": dict(view.tags),
        "join_keys": resolved.join_keys,
        "features": [
            {"reference": f"{s.group.name}:{f}", "output": o} for s in resolved.selections for f, o in zip(s.features, s.output_names)
        ],
        "on_demand": [{"name": t.name, "outputs": [f.name for f in t.outputs], "request_inputs": list(t.request_inputs)} for t in view.on_demand],
        "training_datasets": [d for d in training_datasets(store) if d["view"] == view.name],
    }


def describe(store: FeatureStore, name: str) -> dict[str, Any]:
    """Everything known about one group, view or raw source (groups: schema, storage, history head)."""
    kind, item = find(store, name)
    if kind == "view":
        return describe_view(store, item)
    if kind == "source":
        return {"kind": "source", "name": item.name, "description": item.description, "owner": item.owner,
                "partitioned": item.partitions is not None, "read_by": [g.name for g in _readers(store, item.name)]}
    facts = {"kind": "group", **store.describe(name)}
    days = store.offline.partitions(item) if item.partitions is not None else []
    facts["stored_partitions"] = {"count": len(days), "first": days[0].isoformat() if days else None, "last": days[-1].isoformat() if days else None}
    facts["recent_versions"] = [_history_row(h) for h in store.history(name)[:5]]
    facts["sources"] = list(item.sources)
    facts["views"] = [v for v in store.list_views() if _uses(store, store.catalog.view(v), name)]
    for more in GROUP_FACTS:
        facts.update(more(store, item))
    return facts


def _history_row(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": entry["version"],
        "timestamp": entry["timestamp"].isoformat() if entry.get("timestamp") else None,
        "operation": entry.get("operation"),
        "partition_key": entry.get("partition_key"),
        "dagster_run_id": entry.get("dagster_run_id"),
    }


def history(store: FeatureStore, group: str) -> list[dict[str, Any]]:
    """Delta versions of a group's table, newest first: version, time, operation, partitions, run."""
    return [_history_row(h) for h in store.history(group)]


def _readers(store: FeatureStore, source: str) -> Iterable[FeatureGroup]:
    return [store.group(n) for n in store.list_groups() if source in store.group(n).sources]


def _uses(store: FeatureStore, view: FeatureView, group: str) -> bool:
    return any(s.group.name == group for s in store.catalog.resolve_for_listing(view).selections)


def lineage(store: FeatureStore, name: str) -> dict[str, list[str]]:
    """Upstream and downstream definitions of `name`, as `kind:name` (sources → groups → views → training)."""
    kind, item = find(store, name)
    up: list[str] = []
    down: list[str] = []
    if kind == "source":
        down = [f"group:{g.name}" for g in _readers(store, name)]
    elif kind == "group":
        up = [f"source:{s}" for s in item.sources]
        down = [f"view:{v}" for v in store.list_views() if _uses(store, store.catalog.view(v), name)]
        down += [f"training:{d['name']}" for d in training_datasets(store) if name in d["delta_versions"]]
    else:
        up = [f"group:{s.group.name}" for s in store.catalog.resolve_for_listing(item).selections]
        down = [f"training:{d['name']}" for d in training_datasets(store) if d["view"] == name]
    return {"name": [f"{kind}:{name}"], "upstream": up, "downstream": list(dict.fromkeys(down))}
