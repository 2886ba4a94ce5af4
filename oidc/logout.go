package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// logoutRequest is an RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) as
// /end_session receives it.
type logoutRequest struct {
	client, redirect, state string
	hintSubject             string // the verified id_token_hint's subject, if any
}

// endSession signs out the calling browser only: the session its cookie names, never the
// user's other browsers. A GET whose id_token_hint names the user this browser is signed
// in as ends it at once; without a hint, or with one that does not match, the browser is
// asked to confirm, and only the confirmation (a POST from Gatehouse's own page) ends it.
// Afterwards the browser goes to post_logout_redirect_uri when it is registered for the
// client, else to a page that says it is signed out.
func (s *signin) endSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		message(w, http.StatusBadRequest, "Bad sign-out request", "Go back to the application.")
		return
	}
	lr := s.logoutRequest(r)
	var session app.BrowserSession
	c, err := r.Cookie(sessionCookie)
	if err == nil {
		session, err = s.browser.BrowserSession(ctx, app.HashSecret(c.Value), s.cfg.Now())
		if err != nil && !errors.Is(err, app.ErrNotFound) { // not "signed out" while it is not
			s.unavailable(w, "looking up a browser session failed", err)
			return
		}
	}
	signedIn := err == nil
	confirmed := r.Method == http.MethodPost && sameOrigin(r, s.cfg.Issuer)
	if signedIn && !confirmed && (lr.hintSubject == "" || lr.hintSubject != session.Subject) {
		s.confirmLogout(w, lr)
		return
	}
	if signedIn {
		if err := s.browser.EndBrowserSession(ctx, session.Hash); err != nil {
			s.cfg.Log.Error("ending a browser session failed", "err", err)
			message(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	}
	if lr.redirect == "" {
		message(w, http.StatusOK, "You are signed out", "This browser is no longer signed in to Gatehouse.")
		return
	}
	securityHeaders(w)
	http.Redirect(w, r, lr.target(), http.StatusFound)
}

// target is the registered post-logout URI with the client's state added.
func (lr logoutRequest) target() string {
	u, err := url.Parse(lr.redirect)
	if err != nil || lr.state == "" {
		return lr.redirect
	}
	q := u.Query()
	q.Set("state", lr.state)
	u.RawQuery = q.Encode()
	return u.String()
}

// logoutRequest reads the parameters, keeping post_logout_redirect_uri (with state) only
// when it is registered for the client the request or its hint names.
func (s *signin) logoutRequest(r *http.Request) logoutRequest {
	lr := logoutRequest{client: r.Form.Get("client_id"), state: r.Form.Get("state")}
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](r.Context(), hint, s.hints(r.Context()))
		var expired op.IDTokenHintExpiredError
		if err == nil || errors.As(err, &expired) { // an expired hint still says who
			lr.hintSubject = claims.Subject
			if lr.client == "" {
				lr.client = claims.AuthorizedParty
				if lr.client == "" && len(claims.Audience) > 0 {
					lr.client = claims.Audience[0]
				}
			}
		}
	}
	redirect := r.Form.Get("post_logout_redirect_uri")
	c, ok := s.clients[lr.client]
	if !ok {
		lr.client = ""
	} else if slices.Contains(c.PostLogoutRedirectURIs(), redirect) {
		lr.redirect = redirect
	}
	return lr
}

// confirmLogout asks the browser to confirm it wants to sign out.
func (s *signin) confirmLogout(w http.ResponseWriter, lr logoutRequest) {
	securityHeaders(w)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pages.ExecuteTemplate(w, "logout.html", map[string]string{"Client": lr.client, "Redirect": lr.redirect, "State": lr.state})
}

// sameOrigin reports whether a POST comes from a page of the issuer: browsers send Origin
// on every cross-site POST, so one naming another origin is refused.
func sameOrigin(r *http.Request, issuer string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(issuer)
	return err == nil && origin == u.Scheme+"://"+u.Host
}
