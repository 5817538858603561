"""The registry: the record of applied definitions, a small Delta table beside the offline data.

Stored at `<offline_root>/<project>/_registry`. Each apply (or retire) appends
one row holding the complete new state as JSON, who applied it, when, and
what changed. A Delta commit is atomic on local disk and on S3 (conditional
writes), and a commit is made only on top of the version the apply read
(no commit retries), so of two concurrent applies one wins and the other
re-reads the new record. The table's history is the history of applies.
"""

import getpass
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from feature_platform.definitions.changes import AppliedState
from feature_platform.errors import RegistryError, RegistryStorageError
from feature_platform.offline.storage import filesystem
from feature_platform.offline.store import OfflineStore, _plain

COMMIT_FILE = re.compile(r"\d{20}\.json")

SCHEMA = pa.schema(
    [
        pa.field("sequence", pa.int64(), nullable=False),
        pa.field("applied_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("applied_by", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("changes", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
    ]
)


class RegistryConflict(RegistryError):
    """Another apply committed first; re-read the registry and plan again."""


@dataclass(frozen=True)
class Snapshot:
    """The applied state and the registry's Delta version it was read at (None: nothing applied yet)."""

    state: AppliedState
    version: int | None


def applied_by() -> str:
    """Who applies: `FEATURE_PLATFORM_APPLIED_BY`, else user@host."""
    if os.environ.get("FEATURE_PLATFORM_APPLIED_BY"):
        return os.environ["FEATURE_PLATFORM_APPLIED_BY"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class RegistryStore:
    """Reads and appends the registry of one project.

    Reads go through pyarrow's filesystem, not deltalake: a feature server's
    workers are forked after the registry was first read, and deltalake's
    runtime does not survive a fork. Each commit appends one row whose
    `sequence` is the commit's version, so the latest state is the row the
    latest commit file adds.
    """

    def __init__(self, offline: OfflineStore) -> None:
        self.uri = f"{offline.root}/{offline.project}/_registry"
        self.storage_options = offline.storage_options or None
        self._fs, path = filesystem(self.uri, self.storage_options)
        self._root = path.rstrip("/")
        self._log = f"{self._root}/_delta_log"

    def _table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as exc:
            raise RegistryStorageError(f"cannot read the registry at {self.uri}: {_plain(exc)}; nothing was read or changed") from None

    def latest_version(self, known: int | None) -> int | None:
        """The registry's latest version, given one it had: one file lookup when nothing changed (a stat, an S3 HEAD)."""
        version = known
        try:
            while self._fs.get_file_info(self._commit_file(0 if version is None else version + 1)).type == pafs.FileType.File:
                version = 0 if version is None else version + 1
        except (OSError, pa.ArrowException) as exc:
            raise RegistryStorageError(f"cannot read the registry at {self.uri}: {_plain(exc)}; nothing was read or changed") from None
        return version

    def _commit_file(self, version: int) -> str:
        return f"{self._log}/{version:020d}.json"

    def load(self) -> Snapshot:
        """The latest applied state."""
        try:
            listed = self._fs.get_file_info(pafs.FileSelector(self._log, allow_not_found=True))
            versions = [int(name[:-5]) for name in (PurePosixPath(i.path).name for i in listed) if COMMIT_FILE.fullmatch(name)]
            if not versions:
                self._require_bucket()
                return Snapshot(AppliedState(), None)
            version = max(versions)
            rows = self._rows_added_by(version)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise RegistryStorageError(f"cannot read the registry at {self.uri}: {_plain(exc)}; nothing was read or changed") from None
        if len(rows) != 1:
            raise RegistryError(
                f"the registry at {self.uri} has {len(rows)} records for its version {version}, not one; it was changed "
                "outside feature-platform. Restore its last good Delta version and run `plan` again"
            )
        try:
            data = json.loads(rows[0])
        except (TypeError, ValueError) as exc:
            data = exc
        return Snapshot(AppliedState.from_json(data, f"{self.uri} (version {version})"), version)

    def _require_bucket(self) -> None:
        """On object storage, a registry not found in a bucket that is not there either is a storage error, not "nothing applied"."""
        if not isinstance(self._fs, pafs.LocalFileSystem) and self._fs.get_file_info(self._root.split("/")[0]).type == pafs.FileType.NotFound:
            raise OSError(f"the bucket '{self._root.split('/')[0]}' does not exist")

    def _rows_added_by(self, version: int) -> list[str]:
        """The `state` of the rows with this `sequence` in the data files the commit `version` added."""
        with self._fs.open_input_stream(self._commit_file(version)) as stream:
            actions = [json.loads(line) for line in stream.read().decode().splitlines() if line.strip()]
        states: list[str] = []
        for action in actions:
            if "add" not in action:
                continue
            path = unquote(action["add"]["path"])
            with self._fs.open_input_file(path if path.startswith("/") else f"{self._root}/{path}") as file:
                table = pq.read_table(file, columns=["sequence", "state"])
            states += [row["state"] for row in table.to_pylist() if row["sequence"] == version]
        return states

    def commit(self, state: AppliedState, *, based_on: int | None, action: str, changes: list[dict[str, Any]]) -> int:
        """Record `state` as the next version after `based_on`; RegistryConflict when another commit came first."""
        sequence = 0 if based_on is None else based_on + 1
        row = pa.table(
            {
                "sequence": [sequence],
                "applied_at": [datetime.now(timezone.utc)],
                "applied_by": [applied_by()],
                "action": [action],
                "changes": [json.dumps(changes, default=str)],
                "state": [json.dumps(state.to_json(), default=str)],
            },
            schema=SCHEMA,
        )
        no_retry = CommitProperties(max_commit_retries=0, custom_metadata={"feature_platform": action})
        try:
            if based_on is None:
                write_deltalake(self.uri, row, mode="error", storage_options=self.storage_options, commit_properties=no_retry)
            else:
                table = DeltaTable(self.uri, version=based_on, storage_options=self.storage_options)
                write_deltalake(table, row, mode="append", storage_options=self.storage_options, commit_properties=no_retry)
        except CommitFailedError:
            raise RegistryConflict(f"another apply changed the registry at {self.uri} first") from None
        except (DeltaError, OSError) as exc:
            if based_on is None and "already exists" in str(exc).lower():
                raise RegistryConflict(f"another apply created the registry at {self.uri} first") from None
            raise RegistryError(f"recording the apply in the registry at {self.uri} failed, nothing was recorded: {_plain(exc)}") from None
        return sequence

    def history(self) -> list[dict[str, Any]]:
        """Every apply and retire, newest first: version, when, who, action, what changed."""
        table = self._table()
        if table is None:
            return []
        rows = table.to_pyarrow_dataset().to_table(columns=["sequence", "applied_at", "applied_by", "action", "changes"])
        entries = sorted(rows.to_pylist(), key=lambda r: -r["sequence"])
        return [{**e, "changes": json.loads(e["changes"])} for e in entries]
