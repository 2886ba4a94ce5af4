package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// errInactive: the token is not a valid, unrevoked Gatehouse access token now: unknown,
// revoked, expired, not an access token, or a grant behind it ended. Callers answer
// "inactive" or invalid_token, without saying which.
var errInactive = errors.New("token inactive")

// accessToken checks raw as a Gatehouse access token and returns its claims: a compact JWS
// with header typ at+jwt, signed by a published key, from this issuer, unexpired, and not
// revoked (itself, its client session or any grant it carries). Anything else, an ID token
// included, is errInactive. The token is never looked up: revocations come from a cache.
func (s *Storage) accessToken(ctx context.Context, raw string) (*accessTokenClaims, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errInactive
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != accessTokenType {
		return nil, errInactive
	}
	pub, err := s.keys.publicKey(ctx, header.KeyID)
	if err != nil || pub.alg != jose.SignatureAlgorithm(header.Algorithm) {
		return nil, errInactive
	}
	payload, err := jws.Verify(pub.key)
	if err != nil {
		return nil, errInactive
	}
	var c accessTokenClaims
	if json.Unmarshal(payload, &c) != nil || c.Issuer != s.cfg.Issuer || c.JTI == "" {
		return nil, errInactive
	}
	now := s.cfg.Now()
	if !now.Before(time.Unix(c.Expiry, 0)) {
		return nil, errInactive
	}
	revoked, err := s.tokens.Revoked(ctx, c.ref(), now)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errInactive
	}
	return &c, nil
}
