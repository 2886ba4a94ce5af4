package oidc

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/app"
)

// A refresh token names its chain and its generation in it, then a secret:
// "<chain>.<generation>.<secret>" (see app.RefreshToken). The chain and generation let a
// token used again be recognised after its chain moved on, although only the newest
// token's hash is kept. Tokens issued before chains are bare secrets.

// newRefreshToken returns a new refresh token of generation gen in chain.
func newRefreshToken(chain string, gen int) string {
	return chain + "." + strconv.Itoa(gen) + "." + randomToken(32)
}

// newRefreshChain names a new chain.
func newRefreshChain() string { return randomToken(12) }

// refreshChainOf returns the chain and generation a refresh token names; ok is false for a
// token from before chains, or one that is not ours.
func refreshChainOf(token string) (chain string, gen int, ok bool) {
	chain, rest, found := strings.Cut(token, ".")
	genText, _, found2 := strings.Cut(rest, ".")
	gen, err := strconv.Atoi(genText)
	if !found || !found2 || chain == "" || err != nil || gen < 0 {
		return "", 0, false
	}
	return chain, gen, true
}

// refreshToken finds what token stands for: its stored record, or — for a token whose
// chain has moved past it — the chain's newest token, marked Used, so that the caller
// treats it as the replay it is. Anything else is app.ErrNotFound, unless the store failed.
func (s *Storage) refreshToken(ctx context.Context, token string) (app.RefreshToken, error) {
	t, err := s.tokens.RefreshToken(ctx, app.HashSecret(token))
	if !errors.Is(err, app.ErrNotFound) {
		return t, err
	}
	chain, gen, ok := refreshChainOf(token)
	if !ok {
		return app.RefreshToken{}, err
	}
	newest, chainErr := s.tokens.RefreshChain(ctx, chain)
	switch {
	case chainErr != nil && !errors.Is(chainErr, app.ErrNotFound):
		return app.RefreshToken{}, chainErr // a replay not recognised must not pass for an unknown token
	case chainErr != nil || newest.Generation <= gen:
		return app.RefreshToken{}, err
	}
	newest.Used = true
	return newest, nil
}
