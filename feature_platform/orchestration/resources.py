"""The Dagster resource that configures the feature store from the environment."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.sources.landing import RawSource
from feature_platform.store import DEFAULT_HOME, FeatureStore


# The resource keys the platform's assets and sensors use, namespaced so they sit beside a team's own.
STORE_RESOURCE = "feature_platform_store"
ALERTS_RESOURCE = "feature_platform_alerts"


class FeatureStoreResource(dg.ConfigurableResource):
    """Where the project's data lives; every field can come from an `EnvVar`.

    `home` holds the embedded defaults: `offline/`, `raw/`, `reports/`, `redis/`.
    """

    project: str = "default"
    home: str = DEFAULT_HOME
    offline_root: str | None = None
    raw_root: str | None = None
    redis_url: str | None = None
    environment: str | None = None

    @property
    def raw_path(self) -> str:
        return self.raw_root or str(Path(self.home) / "raw")

    def build_store(
        self,
        groups: Sequence[FeatureGroup],
        views: Sequence[FeatureView] = (),
        sources: Sequence[RawSource] = (),
    ) -> FeatureStore:
        """A `FeatureStore` over these definitions, configured by this resource."""
        return FeatureStore(
            groups,
            views,
            sources=sources,
            offline_root=self.offline_root or str(Path(self.home) / "offline"),
            online_url=self.redis_url or None,
            project=self.project,
            home=self.home,
            environment=self.environment or None,
        )
