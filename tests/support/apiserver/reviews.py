"""TokenReview and SubjectAccessReview, answered from registered tokens and grants."""

from __future__ import annotations

import copy
import uuid

from aiohttp import web

from tests.support.apiserver.base import Shared, _Grant
from tests.support.apiserver.objects import API_AUDIENCE, JSON


class Reviews(Shared):
    """The authentication and authorization review endpoints."""

    def add_token(
        self,
        token: str,
        username: str,
        groups: list[str] | None = None,
        *,
        uid: str | None = None,
        audiences: list[str] | None = None,
        extra: dict[str, list[str]] | None = None,
    ) -> None:
        """A token that TokenReview will accept (audiences default to the API server's)."""
        self._tokens[token] = {
            "username": username,
            "uid": uid or str(uuid.uuid4()),
            "groups": [*(groups or []), "system:authenticated"],
            "extra": extra or {},
            "audiences": audiences or [API_AUDIENCE],
        }

    def allow(
        self,
        subject: str,
        verb: str,
        *,
        path: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        api_group: str = "",
    ) -> None:
        """Grant for SubjectAccessReview; subject is a username or ``group:<name>``.

        ``path`` grants a non-resource URL (trailing ``*`` = prefix); ``resource`` grants
        resource attributes; None for namespace/name/subresource means any; "*" wildcards.
        """
        self._grants.append(
            _Grant(subject, verb, path, resource, subresource, namespace, name, api_group)
        )

    async def _review_body(self, request: web.Request, kind: str) -> JSON | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "BadRequest", "request body is not JSON")
        if not isinstance(body, dict) or body.get("kind") != kind:
            return self._error(400, "BadRequest", f"expected kind {kind}")
        if not isinstance(body.get("spec"), dict):
            return self._error(400, "BadRequest", "spec is required")
        return body

    async def _token_review(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["tokenreviews"] += 1
        body = await self._review_body(request, "TokenReview")
        if isinstance(body, web.Response):
            return body
        spec = body["spec"]
        known = self._tokens.get(str(spec.get("token", "")))
        wanted = spec.get("audiences") or [API_AUDIENCE]
        status: JSON = {"user": {}}
        if known is None:
            status["error"] = "invalid bearer token"
        else:
            common = [a for a in wanted if a in known["audiences"]]
            if not common:
                status["error"] = "token audiences do not match"
            else:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": known["username"],
                        "uid": known["uid"],
                        "groups": list(known["groups"]),
                        "extra": dict(known["extra"]),
                    },
                    "audiences": common,
                }
        out: JSON = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1"}
        out |= {"metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return web.json_response(out, status=201)

    async def _access_review(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["subjectaccessreviews"] += 1
        body = await self._review_body(request, "SubjectAccessReview")
        if isinstance(body, web.Response):
            return body
        spec = body["spec"]
        self.access_reviews.append(copy.deepcopy(spec))
        if ("resourceAttributes" in spec) == ("nonResourceAttributes" in spec):
            return self._error(
                422,
                "Invalid",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        user, groups = str(spec.get("user", "")), list(spec.get("groups") or [])
        allowed = any(g.covers(user, groups, spec) for g in self._grants)
        status: JSON = {"allowed": allowed}
        if allowed:
            status["reason"] = "granted by the fake API server"
        out: JSON = {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"}
        out |= {"metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return web.json_response(out, status=201)
