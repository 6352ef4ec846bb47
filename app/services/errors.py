"""The one base for every service's error: a message safe to show, the field it concerns, the HTTP status."""
from __future__ import annotations


class ServiceError(Exception):
    """A rule was broken. Views show `message` beside `field` (or above the form); the API answers `status`."""

    status: int = 400

    def __init__(self, message: str, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
