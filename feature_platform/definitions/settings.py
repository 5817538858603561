"""Settings read from the environment, checked where they are read: a bad value names the variable and the range."""

import os

from feature_platform.errors import FeaturePlatformError


def seconds_setting(name: str, default: float, *, error: type[FeaturePlatformError], allow_zero: bool = False) -> float:
    """The environment variable `name` as seconds below an hour (zero only with `allow_zero`), `default` when unset.

    >>> seconds_setting("FEATURE_PLATFORM_REGISTRY_CHECK_S", 1.0, error=ArgumentError, allow_zero=True)
    """
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (0 <= seconds if allow_zero else 0 < seconds) or not seconds < 3600:
        raise error(f"{name} must be a number of seconds in {'[' if allow_zero else '('}0, 3600), got {text!r}")
    return seconds
