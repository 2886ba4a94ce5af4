package app

import "time"

// AuthRequest is a browser sign-in an OAuth client started at /authorize: where to send
// the browser back, what it asked for, and — once done — who signed in.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	ResponseMode        string
	Prompt              []string
	LoginID             string // the Slack-confirmed login behind it, once the sign-in page shows a code
	Subject             string // the Slack user, once done
	AuthTime            time.Time
	Done                bool
	CodeHash            string // the authorization code, hashed; single use
	CodeExpiresAt       time.Time
	CreatedAt           time.Time
	ExpiresAt           time.Time
	SessionID           string // the client session its code's tokens belong to, once redeemed
}

// BrowserSession remembers that a browser signed in as a Slack user, so a later sign-in
// for roles already granted does not ask again. Only the cookie's hash is stored.
type BrowserSession struct {
	Hash      string
	Subject   string
	ExpiresAt time.Time
}
