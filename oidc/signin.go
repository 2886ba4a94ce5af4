package oidc

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

//go:embed web
var web embed.FS

var pages = template.Must(template.ParseFS(web, "web/*.html"))

// signin serves the browser side of the code flow: the page that shows the code to type
// in Slack, its status endpoint, and the guard in front of the library's callback.
type signin struct {
	cfg     Config
	svc     Service
	browser BrowserStore
	secure  bool // cookies only over https
	clients map[string]*Client
	hints   func(context.Context) *op.IDTokenHintVerifier // checks id_token_hint at end_session
}

const (
	signinCookiePrefix = "gatehouse_signin_" // + auth request ID: binds a sign-in to its browser
	sessionCookie      = "gatehouse_session" // a browser signed in earlier
	callbackPath       = "/authorize/callback"
)

// securityHeaders: no framing, no third-party anything, no referrer leaking the code.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func (s *signin) routes(mux *http.ServeMux, callback http.Handler) {
	mux.HandleFunc("GET /signin", s.page)
	mux.HandleFunc("GET /signin/status", s.status)
	for _, asset := range []string{"signin.js", "signin.css"} {
		mux.HandleFunc("GET /"+asset, func(w http.ResponseWriter, r *http.Request) {
			securityHeaders(w)
			http.ServeFileFS(w, r, web, "web/"+asset)
		})
	}
	mux.Handle("GET "+callbackPath, s.guard(callback))
	mux.HandleFunc("GET /end_session", s.endSession)
	mux.HandleFunc("POST /end_session", s.endSession)
}

// message renders a page that only says something.
func message(w http.ResponseWriter, status int, title, text string) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	pages.ExecuteTemplate(w, "message.html", map[string]string{"Title": title, "Text": text})
}

// unavailable answers a page whose store failed: that says nothing about the sign-in, which
// goes on once the database answers.
func (s *signin) unavailable(w http.ResponseWriter, what string, err error) {
	s.cfg.Log.Error(what, "err", err)
	message(w, http.StatusServiceUnavailable, "Gatehouse did not answer", "Nothing was lost: reload this page in a moment.")
}

// retrying is the status answer while the store fails (see unavailable).
var retrying = signinStatus{Status: "pending", Message: "Gatehouse did not answer; retrying…"}

// errSigninGone: the sign-in named does not exist, or expired.
var errSigninGone = errors.New("no such sign-in, or it expired")

// load returns the unexpired sign-in named by the id parameter: errSigninGone, or the
// store's error.
func (s *signin) load(r *http.Request) (app.AuthRequest, error) {
	a, err := s.browser.AuthRequest(r.Context(), r.URL.Query().Get("id"))
	if errors.Is(err, app.ErrNotFound) || err == nil && !s.cfg.Now().Before(a.ExpiresAt) {
		return a, errSigninGone
	}
	return a, err
}

// page shows the sign-in: the code to type in Slack. A browser with a session for a user
// who already holds every role asked goes straight on (unless prompt=login); prompt=none
// without one goes back with login_required.
func (s *signin) page(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.load(r)
	switch {
	case errors.Is(err, errSigninGone):
		message(w, http.StatusBadRequest, "This sign-in has expired", "Go back to the application and sign in again.")
		return
	case err != nil:
		s.unavailable(w, "loading a browser sign-in failed", err)
		return
	}
	if a.Done {
		http.Redirect(w, r, callbackPath+"?id="+a.ID, http.StatusFound)
		return
	}
	roles, _ := s.cfg.Policy.RolesOfScopes(a.Scopes)
	if !slices.Contains(a.Prompt, oidc.PromptLogin) {
		subject, ok, err := s.session(r, roles)
		if err != nil { // not "no session", which prompt=none would answer with login_required
			s.unavailable(w, "checking a browser session failed", err)
			return
		}
		if ok {
			if err := s.browser.CompleteAuthRequest(ctx, a.ID, subject, s.cfg.Now()); err != nil && !errors.Is(err, app.ErrConflict) {
				s.unavailable(w, "completing a browser sign-in failed", err)
				return
			}
			http.Redirect(w, r, callbackPath+"?id="+a.ID, http.StatusFound)
			return
		}
	}
	if slices.Contains(a.Prompt, oidc.PromptNone) {
		http.Redirect(w, r, errorRedirect(a, "login_required", "no Gatehouse session in this browser"), http.StatusFound)
		return
	}
	login, ok := s.login(w, r, a)
	if !ok {
		return
	}
	if a.LoginID != "" { // a reload: without script, this is how the sign-in goes on
		if _, st := s.advance(ctx, w, r, a); st.Next != "" {
			http.Redirect(w, r, st.Next, http.StatusFound)
			return
		}
	}
	view := struct {
		ID, Client, Code, Status string
		Roles                    []app.Role
	}{ID: a.ID, Client: a.ClientID, Code: login.UserCode, Status: "Waiting for you in Slack…"}
	for _, name := range roles {
		role, _ := s.cfg.Policy.Role(name)
		view.Roles = append(view.Roles, role)
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pages.ExecuteTemplate(w, "signin.html", view)
}

// login returns the login showing this sign-in's code: a new one bound to this browser by
// a cookie, or the existing one if this is the browser it is bound to.
func (s *signin) login(w http.ResponseWriter, r *http.Request, a app.AuthRequest) (app.Login, bool) {
	ctx := r.Context()
	if a.LoginID != "" {
		l, err := s.svc.Login(ctx, a.LoginID)
		if err != nil && !errors.Is(err, app.ErrNotFound) {
			s.unavailable(w, "loading a browser sign-in's login failed", err)
			return app.Login{}, false
		}
		if err != nil || !s.boundHere(r, a.ID, l) {
			message(w, http.StatusForbidden, "This sign-in belongs to another browser",
				"Go back to the application and sign in again from this browser.")
			return app.Login{}, false
		}
		return l, true
	}
	// The cookie goes out even if the writes below fail: one that committed although its
	// answer was lost leaves this browser bound, and a reload goes on with it.
	secret := randomToken(32)
	http.SetCookie(w, &http.Cookie{Name: signinCookiePrefix + a.ID, Value: secret, Path: "/", MaxAge: int(a.ExpiresAt.Sub(s.cfg.Now()).Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	l, err := s.svc.StartLogin(ctx, app.LoginStart{ClientID: a.ClientID, Scopes: a.Scopes, Secret: secret, Lifetime: a.ExpiresAt.Sub(s.cfg.Now())})
	if err == nil {
		err = s.browser.AttachLogin(ctx, a.ID, l.ID)
	}
	if databaseDown(err) {
		s.unavailable(w, "starting browser sign-in failed", err)
		return app.Login{}, false
	}
	if err != nil {
		s.cfg.Log.Error("starting browser sign-in failed", "auth_request", a.ID, "err", err)
		message(w, http.StatusInternalServerError, "Something went wrong", "Go back to the application and sign in again.")
		return app.Login{}, false
	}
	return l, true
}

// boundHere reports whether this browser holds the cookie the login is bound to.
func (s *signin) boundHere(r *http.Request, id string, l app.Login) bool {
	c, err := r.Cookie(signinCookiePrefix + id)
	return err == nil && app.HashSecret(c.Value) == l.SecretHash
}

// session returns the user this browser is signed in as, if that user holds an active
// grant for every role asked (ok). err is the store failing: no answer either way.
func (s *signin) session(r *http.Request, roles []string) (subject string, ok bool, err error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false, nil
	}
	sess, err := s.browser.BrowserSession(r.Context(), app.HashSecret(c.Value), s.cfg.Now())
	if err == nil {
		_, err = s.svc.GrantsForToken(r.Context(), app.User(sess.Subject), roles)
	}
	switch {
	case errors.Is(err, app.ErrNotFound), errors.Is(err, app.ErrNoActiveGrant):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return sess.Subject, true, nil
}

// signinStatus is what the page learns each time it asks.
type signinStatus struct {
	Status  string `json:"status"` // pending, approved, denied
	Message string `json:"message"`
	Next    string `json:"next,omitempty"` // where the page goes now
}

// status tells the page where its sign-in stands; once it is confirmed in Slack and
// approved, the sign-in is done and the page goes on to the callback.
func (s *signin) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	securityHeaders(w)
	answer := func(code int, st signinStatus) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(st)
	}
	a, err := s.load(r)
	if errors.Is(err, errSigninGone) {
		answer(http.StatusNotFound, signinStatus{Status: "denied", Message: "This sign-in has expired. Go back to the application and sign in again."})
		return
	}
	var l app.Login
	if err == nil {
		l, err = s.svc.Login(ctx, a.LoginID)
	}
	switch {
	case err != nil && !errors.Is(err, app.ErrNotFound):
		s.cfg.Log.Error("browser sign-in status failed", "err", err)
		answer(http.StatusServiceUnavailable, retrying)
		return
	case err != nil || !s.boundHere(r, a.ID, l):
		answer(http.StatusForbidden, signinStatus{Status: "denied", Message: "This sign-in belongs to another browser."})
		return
	}
	answer(s.advance(ctx, w, r, a))
}

// advance tells where a sign-in bound to this browser stands and, once it is confirmed in
// Slack and approved, finishes it: the page's script polls it, and a reload of the page
// (the no-script fallback) goes through it too.
func (s *signin) advance(ctx context.Context, w http.ResponseWriter, r *http.Request, a app.AuthRequest) (int, signinStatus) {
	if a.Done {
		return http.StatusOK, signinStatus{Status: "approved", Message: "Approved", Next: callbackPath + "?id=" + a.ID}
	}
	c, err := r.Cookie(signinCookiePrefix + a.ID)
	if err != nil {
		return http.StatusForbidden, signinStatus{Status: "denied", Message: "This sign-in belongs to another browser."}
	}
	outcome, err := s.svc.PollLogin(ctx, a.ClientID, c.Value, 0)
	if err == nil {
		err = s.svc.RedeemLogin(ctx, outcome)
	}
	if errors.Is(err, app.ErrLoginUsed) {
		// Issued by an earlier poll whose finish failed: finish it now.
		outcome.Login, err = s.svc.Login(ctx, a.LoginID)
	}
	switch {
	case err == nil:
		if err := s.finish(ctx, w, a, outcome.Login.Subject.ID); err != nil {
			s.cfg.Log.Error("finishing browser sign-in failed", "auth_request", a.ID, "err", err)
			return retryingAfter(err)
		}
		return http.StatusOK, signinStatus{Status: "approved", Message: "Approved", Next: callbackPath + "?id=" + a.ID}
	case errors.Is(err, app.ErrLoginPending):
		return http.StatusOK, signinStatus{Status: "pending", Message: sentence(outcome.Reason)}
	case errors.Is(err, app.ErrLoginDenied), errors.Is(err, app.ErrLoginExpired):
		return http.StatusOK, signinStatus{Status: "denied", Message: "Denied: " + outcome.Reason, Next: errorRedirect(a, "access_denied", outcome.Reason)}
	default:
		s.cfg.Log.Error("browser sign-in status failed", "auth_request", a.ID, "err", err)
		return retryingAfter(err)
	}
}

// retryingAfter is the status answer after err, which the page's next poll tries again:
// 503 when the database did not answer, else 500.
func retryingAfter(err error) (int, signinStatus) {
	if databaseDown(err) {
		return http.StatusServiceUnavailable, retrying
	}
	return http.StatusInternalServerError, signinStatus{Status: "pending", Message: "Something went wrong; retrying…"}
}

// finish marks the sign-in done and remembers the browser as signed in as subject.
func (s *signin) finish(ctx context.Context, w http.ResponseWriter, a app.AuthRequest, subject string) error {
	now := s.cfg.Now()
	if err := s.browser.CompleteAuthRequest(ctx, a.ID, subject, now); err != nil {
		return err
	}
	secret := randomToken(32)
	err := s.browser.CreateBrowserSession(ctx, app.BrowserSession{Hash: app.HashSecret(secret), Subject: subject, ExpiresAt: now.Add(s.cfg.LoginTTL)})
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", MaxAge: int(s.cfg.LoginTTL.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return nil
}

// guard lets only the browser a sign-in is bound to reach the library's callback, which
// issues the authorization code: a sign-in confirmed in Slack cannot be finished from
// another browser.
func (s *signin) guard(callback http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.load(r)
		switch {
		case errors.Is(err, errSigninGone):
			message(w, http.StatusBadRequest, "This sign-in has expired", "Go back to the application and sign in again.")
			return
		case err != nil:
			s.unavailable(w, "loading a browser sign-in failed", err)
			return
		}
		var bound bool
		if a.LoginID != "" {
			var l app.Login
			l, err = s.svc.Login(r.Context(), a.LoginID)
			bound = err == nil && s.boundHere(r, a.ID, l)
		} else if c, cookieErr := r.Cookie(sessionCookie); cookieErr == nil {
			var sess app.BrowserSession
			sess, err = s.browser.BrowserSession(r.Context(), app.HashSecret(c.Value), s.cfg.Now())
			bound = err == nil && sess.Subject == a.Subject
		}
		if err != nil && !errors.Is(err, app.ErrNotFound) {
			s.unavailable(w, "checking a browser sign-in's browser failed", err)
			return
		}
		if !bound {
			message(w, http.StatusForbidden, "This sign-in belongs to another browser",
				"Go back to the application and sign in again from this browser.")
			return
		}
		callback.ServeHTTP(w, r)
	})
}

// sentence capitalises a status for the page.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "…"
}
