"""Entities of the demo: card holders, merchants, and the card's country."""

from feature_platform import Entity

user = Entity("user", join_keys={"user_id": "int64"}, description="A card holder.")
merchant = Entity("merchant", join_keys={"merchant_id": "int64"}, description="A merchant accepting cards.")
country = Entity("country", join_keys={"country": "string"}, description="ISO code of the card's issuing country.")
