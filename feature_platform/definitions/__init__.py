"""What users declare: entities, features, groups, views, rules, reference resolution and the contract.

Imports nothing of ours but `feature_platform.errors`.
"""
