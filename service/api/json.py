"""JSON responses rendered by orjson (hot paths return these, skipping response validation)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    """application/json rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize with orjson (pydantic models are dumped first)."""
        if hasattr(content, "model_dump"):
            content = content.model_dump(mode="json")
        return orjson.dumps(content)
