"""GET /api/v1/directory: the signed key directory the broker holds now. Public, no token:
it holds public keys only, and a reader trusts it only after verifying its signature
against the directory key it pinned (docs/wire-format.md, "The key directory")."""

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import Response


def directory_router(signed: Callable[[], bytes]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["directory"])

    @router.get("/directory")
    async def directory() -> Response:
        """The signed directory: `{"s284_signed_directory": 1, "kid", "version", "jws"}`;
        verify `jws` with the pinned directory key before using any key in it."""
        return Response(
            signed(), media_type="application/json", headers={"Cache-Control": "no-cache"}
        )

    return router
