package oidc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// MaxBodyBytes caps every request body: OAuth forms are small, and nothing is parsed
// before the cap is checked.
const MaxBodyBytes = 64 << 10

// requestTimeout bounds one request, its database work above all: a database that does not
// answer gets the client a 503 in time (see errStore), not a request hanging as long as the
// network to the database does.
const requestTimeout = 5 * time.Second

// guardHTTP sits in front of the whole provider. Each request has requestTimeout. A body
// over MaxBodyBytes gets 413 before anything parses it. Introspection without client
// credentials gets 401. A 401 from the endpoints that authenticate clients carries
// WWW-Authenticate: Basic (RFC 6749 §5.2), and one from userinfo the Bearer challenge of
// RFC 6750 §3.
func guardHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		if r.ContentLength > MaxBodyBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
			if err != nil {
				http.Error(w, "could not read the request body", http.StatusBadRequest)
				return
			}
			if len(body) > MaxBodyBytes {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		cw := &challenger{ResponseWriter: w, path: r.URL.Path, bearer: r.Header.Get("Authorization") != ""}
		if r.URL.Path == op.DefaultEndpoints.Introspection.Relative() && r.Method == http.MethodPost && !hasClientSecret(r) {
			cw.Header().Set("Content-Type", "application/json")
			cw.WriteHeader(http.StatusUnauthorized)
			io.WriteString(cw, `{"error":"invalid_client","error_description":"client must be authenticated"}`)
			return
		}
		next.ServeHTTP(cw, r)
	})
}

// hasClientSecret reports whether the request carries client credentials.
func hasClientSecret(r *http.Request) bool {
	if _, _, ok := r.BasicAuth(); ok {
		return true
	}
	return r.ParseForm() == nil && (r.PostForm.Get("client_secret") != "" || r.PostForm.Get("client_assertion") != "")
}

// challenger adds the WWW-Authenticate challenge to a 401.
type challenger struct {
	http.ResponseWriter
	path   string
	bearer bool // the request carried an Authorization header
}

func (c *challenger) WriteHeader(code int) {
	if code == http.StatusUnauthorized && c.Header().Get("WWW-Authenticate") == "" {
		switch c.path {
		case op.DefaultEndpoints.Userinfo.Relative():
			if c.bearer {
				c.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
			} else {
				c.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
			}
		default:
			c.Header().Set("WWW-Authenticate", `Basic realm="gatehouse"`)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *challenger) Unwrap() http.ResponseWriter { return c.ResponseWriter }
