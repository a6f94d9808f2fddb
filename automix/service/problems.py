"""RFC 9457 problem details: every error the service answers is one of these, as
``application/problem+json`` with the fields type, title, status and detail."""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    """A problem object; ``code`` names the kind of problem in its ``type`` URI."""
    return {"type": f"urn:automix:problem:{code}", "title": title, "status": status,
            "detail": detail}


class Problem(Exception):
    """A request refused with ``status`` (4xx), a short ``code`` and a one-line ``detail``."""

    def __init__(self, status: int, code: str, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or code.replace("-", " ").capitalize()

    def to_dict(self) -> dict[str, Any]:
        return problem(self.status, self.title, self.detail, self.code)
