"""The HTTP feature server over the online store."""

from feature_platform.errors import import_extra

import_extra("fastapi", "server", "the HTTP feature server")
import_extra("uvicorn", "server", "the HTTP feature server")
