"""The fraud domain: the feature view the fraud model consumes and its training dataset."""

from assets.partitions import DEMO_LAST_DAY
from feature_platform import Feature, FeatureView, OnDemandTransformation, TimeSplit, TrainingDatasetDefinition


def amount_vs_history(columns: dict[str, list]) -> dict[str, list]:
    """How unusual the requested amount is for this card holder and merchant (missing history: missing)."""

    def ratio(amount: float | None, mean: float | None) -> float | None:
        return None if amount is None or not mean else amount / mean

    amounts = columns["amount"]
    return {
        "amount_to_user_mean_30d": [ratio(a, m) for a, m in zip(amounts, columns["amount_mean_30d"])],
        "amount_to_merchant_mean_7d": [ratio(a, m) for a, m in zip(amounts, columns["merchant_amount_mean_7d"])],
    }


fraud_detection = FeatureView(
    "fraud_detection",
    features=[
        "user_transaction_features:txn_count_7d",
        "user_transaction_features:amount_sum_7d",
        "user_transaction_features:amount_mean_30d",
        "user_transaction_features:amount_max_30d",
        "user_transaction_features:distinct_merchants_30d",
        "user_last_transaction:last_amount",
        "user_profile:age",
        "user_profile:is_premium",
        "merchant_features:merchant_txn_count_7d",
        "merchant_features:merchant_amount_mean_7d",
        "merchant_features:merchant_fraud_rate_7d",
        "merchant_country_features:country_txn_count_1d",
    ],
    description="Card-not-present fraud model: card holder history, merchant risk and request amount.",
    on_demand=[
        OnDemandTransformation(
            "amount_vs_history",
            function=amount_vs_history,
            outputs=[Feature("amount_to_user_mean_30d", "float64"), Feature("amount_to_merchant_mean_7d", "float64")],
            inputs=["amount_mean_30d", "merchant_amount_mean_7d"],
            request_inputs=[Feature("amount", "float64")],
            mode="python",  # plain lists in and out: no pandas frame per online request
        )
    ],
    owner="team:fraud-ml",
    tags={"model": "fraud-v3"},
)

feature_views = [fraud_detection]

# Labelled transactions from a week after the first partition (so 7-day features exist), split by time.
fraud_training = TrainingDatasetDefinition(
    "fraud_training",
    view="fraud_detection",
    source="transactions",
    columns=["transaction_id", "user_id", "merchant_id", "country", "amount", "event_time", "is_fraud"],
    label="is_fraud",
    first_day="2024-04-08",
    last_day=DEMO_LAST_DAY,
    split=TimeSplit({"train": ("2024-04-08", "2024-05-01"), "validation": ("2024-05-01", "2024-05-08"), "test": ("2024-05-08", None)}),
    description="Card transactions with their fraud label and the fraud_detection features as of each transaction.",
    owner="team:fraud-ml",
)

training_datasets = [fraud_training]
