"""A SQL table or query with a time column, read through SQLAlchemy; the URL comes from an environment variable.

    orders = SqlSource("orders", url_env="ORDERS_DATABASE_URL", table="orders", schema="shop",
                       time_column="ordered_at", partitions=DailyPartitions(start="2024-05-01"))

Only the run's window is read (`WHERE time_column >= :start AND time_column < :end`,
bound parameters). The URL is read when the source is read and never appears in an
error or a log: errors name the variable.
"""

import os
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any, ClassVar

import pandas as pd

from feature_platform.errors import DefinitionError, SourceError, import_extra
from feature_platform.sources.existing import ExistingSource
from feature_platform.sources.windows import utc


UNREACHABLE = ("could not connect", "connection refused", "timeout", "timed out", "server closed", "connection reset")


@dataclass(frozen=True)
class SqlSource(ExistingSource):
    """Rows of `table` (in `schema`) or of `query`, from the database at `$url_env` (a SQLAlchemy URL)."""

    _: KW_ONLY
    url_env: str = ""
    table: str | None = None
    schema: str | None = None
    query: str | None = None
    kind: ClassVar[str] = "SQL"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.url_env:
            raise DefinitionError(f"{self.label}: give url_env, the environment variable holding the database URL")
        if (self.table is None) == (self.query is None):
            raise DefinitionError(f"{self.label}: give exactly one of table= or query=")

    def where(self) -> str:
        return f"{'table ' + self.table if self.table else 'its query'} in the database at ${self.url_env}"

    def _engine(self) -> Any:
        sqlalchemy = import_extra("sqlalchemy", "postgres", "a SQL source")
        url = os.environ.get(self.url_env)
        if not url:
            raise SourceError(f"{self.label}: the environment variable {self.url_env} (its database URL) is not set")
        try:
            return sqlalchemy.create_engine(url, hide_parameters=True, pool_pre_ping=True)
        except Exception as error:  # a malformed URL or a missing driver: the message may hold the URL
            raise SourceError(f"{self.label}: ${self.url_env} is not a usable SQLAlchemy URL ({type(error).__name__})") from None

    def read_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        sqlalchemy = import_extra("sqlalchemy", "postgres", "a SQL source")
        engine = self._engine()
        quote = engine.dialect.identifier_preparer.quote
        if self.table is not None:
            source = f"{quote(self.schema)}.{quote(self.table)}" if self.schema else quote(self.table)
        else:
            source = f"({self.query}) AS source_rows"
        statement = f"SELECT * FROM {source}"
        parameters = {}
        if start is not None and end is not None:
            column = quote(self.time_column)
            statement += f" WHERE {column} >= :start AND {column} < :end"
            parameters = {"start": utc(start), "end": utc(end)}
        try:
            with engine.connect() as connection:
                return pd.read_sql_query(sqlalchemy.text(statement), connection, params=parameters)
        except sqlalchemy.exc.SQLAlchemyError as error:
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            if isinstance(error, sqlalchemy.exc.OperationalError) and any(w in detail.lower() for w in UNREACHABLE):
                raise SqlSourceUnavailable(f"{self.label}: the database at ${self.url_env} did not answer: {detail}") from None
            raise SourceError(f"{self.label}: reading {self.where()} failed: {detail}") from None
        finally:
            engine.dispose()


class SqlSourceUnavailable(SourceError):
    """The database did not answer; a retry may succeed."""

    transient = True
