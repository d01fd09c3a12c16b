from __future__ import annotations

from pathlib import Path


class PolicyBundleError(Exception):
    """A policy bundle, or a request put to it, is not valid; says where.

    `file` and `line` locate a problem in a bundle file; `field` names the field of a
    request or table row. The message a person reads starts with that location.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = message
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def where(self) -> str:
        place = self.file or ""
        if place and self.line is not None:
            place = f"{place}:{self.line}"
        if self.field is not None:
            place = f"{place}: field {self.field!r}" if place else f"field {self.field!r}"
        return place
