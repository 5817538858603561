"""The record of a definition as the registry keeps it, and the fingerprints that compare definitions cheaply.

A group version's record is plain JSON: keys and dtypes, times, features in
order with dtypes, ttl, partitions, online flag, documentation and rules. Two
fingerprints are taken from it: the *schema* fingerprint (what decides how rows
are stored: keys, times, features in order) and the *definition* fingerprint
(the whole record), which every read and write compares with the applied one.
"""

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from feature_platform.definitions.aggregations import StreamFeatureGroup, stream_options, stream_spec
from feature_platform.definitions.concepts import DailyPartitions, Entity, Feature, FeatureGroup, FeatureView

GroupRecord = dict[str, Any]
ViewRecord = dict[str, Any]


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _layout(group: FeatureGroup, feature_count: int) -> dict[str, Any]:
    layout = {
        "keys": [[k, str(t)] for k, t in group.key_types.items()],
        "event_time": group.event_time,
        "created_time": group.created_time,
        "features": [[f.name, str(f.arrow_type)] for f in group.features[:feature_count]],
    }
    stream = stream_spec(group)
    if stream is not None:  # a stream group stores its events and tiles: their layout is part of its schema
        layout["stream"] = stream
    return layout


def prefix_fingerprints(group: FeatureGroup) -> tuple[str, ...]:
    """Schema fingerprints of the group with its first 1, 2, ... n features: the layouts it can have evolved through."""
    return tuple(_digest(_layout(group, n)) for n in range(1, len(group.features) + 1))


def schema_fingerprint(group: FeatureGroup) -> str:
    """16 hex digits naming how the group's rows are stored (keys, times, features in order with dtypes)."""
    return prefix_fingerprints(group)[-1]


def layout_ids(group: FeatureGroup) -> tuple[int, ...]:
    """32-bit ids of the layouts of the first 1, 2, ... n features; the last is the group's current layout.

    Online values carry the id of the layout they were written with. Compatible
    evolution only appends features, so a value written under an earlier layout
    is one of these ids and decodes by position with the later features null;
    any other id was written by different definitions and is refused.
    """
    return tuple(int(fingerprint[:8], 16) for fingerprint in prefix_fingerprints(group))


def group_record(group: FeatureGroup) -> GroupRecord:
    """The JSON-able record of one group version, with both fingerprints."""
    partitions = group.partitions
    record: GroupRecord = {
        "name": group.name,
        "version": group.version,
        "entities": [{"name": e.name, "join_keys": {k: str(t) for k, t in e.key_types().items()}} for e in group.entities],
        "keys": {k: str(t) for k, t in group.key_types.items()},
        "event_time": group.event_time,
        "created_time": group.created_time,
        "features": [{"name": f.name, "dtype": str(f.arrow_type), "description": f.description} for f in group.features],
        "ttl_seconds": None if group.ttl is None else group.ttl.total_seconds(),
        "partitions": None if partitions is None else {
            "start": partitions.start.isoformat(), "end": partitions.end.isoformat() if partitions.end else None,
        },
        "online": group.online,
        "description": group.description,
        "owner": group.owner,
        "tags": dict(sorted(group.tags.items())),
        "rules": [rule.summary() for rule in group.rules],
        "schema_fingerprint": schema_fingerprint(group),
    }
    stream = stream_spec(group)
    if stream is not None:
        record["stream"] = stream
    record["fingerprint"] = definition_fingerprint(record)
    return record


def definition_fingerprint(record: Mapping[str, Any]) -> str:
    """16 hex digits over the whole record (its own fingerprint field left out)."""
    return _digest({k: v for k, v in record.items() if k != "fingerprint"})


def group_from_record(record: Mapping[str, Any]) -> FeatureGroup:
    """A readable group (no compute, no rules) rebuilt from a record, to read tables the repository no longer defines."""
    entities = [Entity(e["name"], join_keys=e["join_keys"]) for e in record["entities"]]
    partitions = record["partitions"]
    stream = record.get("stream")
    kind, options = (FeatureGroup, {}) if stream is None else (StreamFeatureGroup, stream_options(stream, _dtype))
    features = [Feature(f["name"], _dtype(f["dtype"]), f["description"]) for f in record["features"]] if stream is None else ()
    return kind(
        record["name"],
        entities=entities,
        features=features,
        **options,
        event_time=record["event_time"],
        created_time=record["created_time"],
        version=int(record["version"]),
        partitions=None if partitions is None else DailyPartitions(partitions["start"], partitions["end"]),
        ttl=None if record["ttl_seconds"] is None else timedelta(seconds=record["ttl_seconds"]),
        online=record["online"],
        description=record["description"],
        owner=record["owner"],
        tags=record["tags"],
        drift=None,
    )


def _dtype(text: str) -> str:
    """The dtype name of an Arrow type's text (records store `str(pa_type)`)."""
    names = {"int64": "int64", "int32": "int32", "double": "float64", "float": "float32", "string": "string",
             "bool": "bool", "timestamp[us, tz=UTC]": "timestamp", "date32[day]": "date"}
    return names.get(text, text)


def view_record(view: FeatureView, group_versions: Mapping[str, int]) -> ViewRecord:
    """The JSON-able record of a view: its references and the group version each reads."""
    record: ViewRecord = {
        "name": view.name,
        "version": view.version,
        "features": list(view.features),
        "on_demand": [t.name for t in view.on_demand],
        "description": view.description,
        "owner": view.owner,
        "tags": dict(sorted(view.tags.items())),
        "group_versions": dict(sorted(group_versions.items())),
    }
    record["fingerprint"] = definition_fingerprint({k: v for k, v in record.items() if k != "group_versions"})
    return record
