"""Every kind of source a feature group can read, as one type."""

from typing import Union

from feature_platform.sources.files import FileSource
from feature_platform.sources.landing import RawSource
from feature_platform.sources.sql import SqlSource
from feature_platform.sources.tables import TableSource
from feature_platform.sources.upstream import AssetSource

Source = Union[RawSource, SqlSource, FileSource, TableSource, AssetSource]

__all__ = ["AssetSource", "FileSource", "RawSource", "Source", "SqlSource", "TableSource"]
