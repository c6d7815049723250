"""Shopper sign-in: tokens for signed-in shoppers (gateway/identity.py).

``POST /v1/auth/shopper-tokens`` lets the shop's backend (an API key with the ``sessions`` role) ask the
gateway for a shopper's token after the shopper signed in to the shop; a backend that holds a signing key of
its own mints tokens itself and never calls this. ``POST /v1/auth/dev-session`` signs the storefront in as a
demo shopper and exists only when ``SHOPAI_ENV=dev`` (``make run``): it hands any caller any shopper's token.
"""

from __future__ import annotations

import time

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from gateway.identity import ShopperToken, TokenRefused
from gateway.problems import ApiProblem, Problem

auth = APIBlueprint("auth", __name__, url_prefix="/v1/auth",
                    abp_tags=[Tag(name="auth", description="Tokens for signed-in shoppers")])
dev_auth = APIBlueprint("dev_auth", __name__, url_prefix="/v1/auth",
                        abp_tags=[Tag(name="auth", description="Tokens for signed-in shoppers")])

USER_ID = r"^[^\s/]{1,128}$"
DEV_SHOPPER = "u1"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=USER_ID, description="the signed-in shopper's user id (the token's subject)")
    ttl_seconds: int | None = Field(None, ge=30, le=86400,
                                    description="lifetime; default SHOPAI_GATEWAY_SHOPPER_TOKEN_TTL_SECONDS, "
                                                "never above SHOPAI_GATEWAY_SHOPPER_TOKEN_MAX_TTL_SECONDS")


class DevSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(DEV_SHOPPER, pattern=USER_ID, description="the demo shopper to sign in as")


class TokenReply(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    token_type: str = "Bearer"
    user_id: str
    expires_at: int = Field(description="Unix time")
    expires_in: int = Field(description="seconds")


def _reply(minted: ShopperToken) -> dict:
    return {"token": minted.token, "token_type": "Bearer", "user_id": minted.subject,
            "expires_at": minted.expires_at, "expires_in": max(0, minted.expires_at - int(time.time()))}


def _mint(user_id: str, ttl_seconds: int | None) -> tuple[dict, int]:
    tokens = current_app.extensions["shopai.access"].tokens
    if not tokens.can_mint:
        raise ApiProblem(501, "this gateway mints no shopper tokens: no SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS is set "
                              "(the shop's backend signs them with its own key)", slug="no-token-secret")
    try:
        return _reply(tokens.mint(user_id, ttl_seconds)), 201
    except TokenRefused as exc:
        raise ApiProblem(400, str(exc)) from exc


@auth.post("/shopper-tokens", responses={201: TokenReply, 400: Problem, 501: Problem})
def shopper_token(body: TokenRequest) -> tuple[dict, int]:
    """A short-lived token for a shopper the shop's backend has signed in. Needs the `sessions` role: only the
    shop's own backend holds such a key, never a browser."""
    return _mint(body.user_id, body.ttl_seconds)


@dev_auth.post("/dev-session", responses={201: TokenReply, 400: Problem, 501: Problem})
def dev_session(body: DevSessionRequest) -> tuple[dict, int]:
    """Development only (`SHOPAI_ENV=dev`, `make run`): a token for a demo shopper, for the storefront.
    Absent from any other environment."""
    return _mint(body.user_id, None)
