-- Browser sign-ins in progress (OIDC authorization-code flow with PKCE):
-- the state the issuer sends back, with the nonce, PKCE verifier and
-- redirect URI it was started with. One use each; they expire. In the
-- catalog, so that any server of several may finish what another started.

-- +goose Up
CREATE TABLE oidc_logins (
	state      TEXT PRIMARY KEY,
	doc        TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE oidc_logins;
