// Package federation verifies OIDC ID tokens from outside Lifeboat (a CI
// job's GitHub Actions token, say) against administrator-defined trust rules,
// and says which Lifeboat service identity a token maps to.
//
// Exchange works in this order, refusing with lifeboat.EAuth at the first
// failure:
//
//	validate every rule (EInvalid if one is broken: fail closed)
//	refuse tokens over 16 KiB, not in compact JWS form, unsigned (alg none),
//	  or signed with anything but RS256, ES256, PS256 or EdDSA
//	read iss from the payload WITHOUT trusting it; refuse, with no network
//	  call, an issuer that no rule names
//	get the issuer's provider: discovery at ISSUER/.well-known/openid-configuration,
//	  then its jwks_uri (go-oidc; cached per issuer, keys refetched on an
//	  unknown kid; a failed discovery is retried on the next call) -- EUnavailable
//	for each rule of that issuer, in order: verify signature, iss, exp and aud
//	  (go-oidc), then match sub and the rule's extra claims ('*' wildcards)
//	the first rule that matches wins; TTL = min(rule TTL, time to token expiry)
//
// Errors never contain the raw token or its signature. The package holds
// no state but the provider cache, logs nothing, and imports only
// internal/lifeboat from this repository; the server's token-exchange
// endpoint issues the Lifeboat token from the returned Match.
package federation
