"""Listing folders under the offline root, local or on S3, with the credentials Delta uses."""

from pathlib import Path

import pyarrow.fs as pafs

# deltalake storage option → pyarrow S3FileSystem argument
_S3_OPTIONS = {
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_REGION": "region",
    "AWS_ENDPOINT_URL": "endpoint_override",
}


def filesystem(uri: str, storage_options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding `uri` and the path inside it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    if uri.startswith("s3://") and storage_options:
        options = {_S3_OPTIONS[k.upper()]: v for k, v in storage_options.items() if k.upper() in _S3_OPTIONS}
        if "endpoint_override" in options and options["endpoint_override"].startswith("http://"):
            options["scheme"] = "http"
        return pafs.S3FileSystem(**options), uri.removeprefix("s3://")
    return pafs.FileSystem.from_uri(uri)


def list_folders(uri: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """Names of the folders directly under `uri` (none when it does not exist)."""
    fs, path = filesystem(uri, storage_options)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(Path(i.path).name for i in infos if i.type == pafs.FileType.Directory)
