"""The demo feature repository: raw sources, feature groups and views, one file per domain."""

from assets import fraud, merchants, raw, streaming, users

raw_sources = [raw.transactions, raw.users]
feature_groups = [*users.feature_groups, *merchants.feature_groups, *streaming.feature_groups]
feature_views = [*fraud.feature_views, *streaming.feature_views]
training_datasets = [*fraud.training_datasets]
