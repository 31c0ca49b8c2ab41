"""A relying party built on Authlib (a stock OpenID Connect client library rollcall did not
write), driving a rollcall issuer the way an application does: discovery, the code flow with
PKCE, the sign-in form as a browser submits it, the code exchange, ID token validation against
the published keys (signature, iss, aud, nonce, exp), userinfo, refresh rotation, reuse
detection, revocation (RFC 7009) and RP-initiated logout.

Run by the end-to-end test `oidc::a_stock_relying_party_library_signs_in_end_to_end`:

    python tests/oidc/rp.py ISSUER CLIENT_ID REDIRECT_URI POST_LOGOUT_URI LOGIN PASSWORD

Prints one `ok <step>` line per step and exits 0, or raises at the first step that fails.
"""

import secrets
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
with warnings.catch_warnings():
    # authlib.jose is deprecated in favour of joserfc (same authors); it still validates.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
from authlib.integrations.base_client.errors import OAuthError


class Form(HTMLParser):
    """The sign-in page's form: its action and its inputs."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.inputs = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.inputs[a["name"]] = a.get("value", "")


def ok(step):
    print(f"ok {step}", flush=True)


def browser_sign_in(browser, url, login, password):
    """What a person does: open the page, type, submit. Returns the redirect's Location."""
    page = browser.get(url, allow_redirects=False)
    assert page.status_code == 200, page.status_code
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    form = Form()
    form.feed(page.text)
    assert form.inputs.get("csrf"), "a CSRF token"
    fields = dict(form.inputs)
    fields.update({"login": login, "password": password})
    done = browser.post(urljoin(url, form.action), data=fields, allow_redirects=False)
    assert done.status_code == 303, (done.status_code, done.text[:300])
    return done.headers["Location"]


def main(issuer, client_id, redirect_uri, post_logout_uri, login, password):
    meta = requests.get(f"{issuer}/.well-known/openid-configuration").json()
    assert meta["issuer"] == issuer
    assert "S256" in meta["code_challenge_methods_supported"]
    ok("discovery")

    client = OAuth2Session(
        client_id,
        scope="openid profile email offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    browser = requests.Session()
    location = browser_sign_in(browser, url, login, password)
    query = parse_qs(urlparse(location).query)
    assert query["state"] == [state]
    assert query["iss"] == [issuer], "RFC 9207"
    ok("sign-in")

    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    ok("code exchange")

    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_options={
            "iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [client_id]},
            "nonce": {"essential": True, "values": [nonce]},
            "sub": {"essential": True},
        },
    )
    claims.validate(now=int(time.time()), leeway=30)
    assert claims["preferred_username"] == login
    assert claims["amr"] == ["pwd"]
    ok("id token")

    info = client.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"], info
    ok("userinfo")

    first = token["refresh_token"]
    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=first)
    second = refreshed["refresh_token"]
    assert second != first, "rotated"
    ok("refresh rotation")

    # The spent token once more, inside the grace period: a second tab. Then a third time:
    # reuse, and the whole family is revoked, the newest token with it.
    client.refresh_token(meta["token_endpoint"], refresh_token=first)
    try:
        client.refresh_token(meta["token_endpoint"], refresh_token=first)
        raise AssertionError("a reused refresh token was accepted")
    except OAuthError as e:
        assert e.error == "invalid_grant", e.error
    try:
        client.refresh_token(meta["token_endpoint"], refresh_token=second)
        raise AssertionError("the family survived a reuse")
    except OAuthError as e:
        assert e.error == "invalid_grant", e.error
    ok("reuse detection")

    # A new grant through the browser's session (no page this time), then revoked.
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    silent = browser.get(url, allow_redirects=False)
    assert silent.status_code == 303, "the session signs in without a page"
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=silent.headers["Location"],
        code_verifier=verifier,
    )
    client.revoke_token(meta["revocation_endpoint"], token=token["refresh_token"])
    try:
        client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
        raise AssertionError("a revoked refresh token was accepted")
    except OAuthError as e:
        assert e.error == "invalid_grant", e.error
    ok("revocation")

    bye = browser.get(
        meta["end_session_endpoint"],
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": post_logout_uri,
            "state": "bye",
        },
        allow_redirects=False,
    )
    assert bye.status_code == 303, bye.status_code
    assert bye.headers["Location"] == f"{post_logout_uri}?state=bye"
    again = browser.get(url, allow_redirects=False)
    assert again.status_code == 200, "signed out: the page again"
    ok("logout")


if __name__ == "__main__":
    main(*sys.argv[1:7])
