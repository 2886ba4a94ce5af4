package app

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// PrincipalKind says whether access is for a person or a service client.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalUser    PrincipalKind = "user"
	PrincipalService PrincipalKind = "service"
)

// Principal is who access is for: a Slack user (ID = Slack user ID) or a service client
// (ID = its client ID). IDs never contain ':'.
type Principal struct {
	Kind PrincipalKind
	ID   string
}

// User returns the principal for a Slack user ID.
func User(id string) Principal { return Principal{Kind: PrincipalUser, ID: id} }

// RequestStatus is where a request is in its life.
type RequestStatus string

// Request states: pending → approved | denied | expired | cancelled.
const (
	StatusPending   RequestStatus = "pending"
	StatusApproved  RequestStatus = "approved"
	StatusDenied    RequestStatus = "denied"
	StatusExpired   RequestStatus = "expired"
	StatusCancelled RequestStatus = "cancelled"
)

// MessageRef locates the approval message posted for a request.
type MessageRef struct {
	Channel string
	TS      string
}

// Request is a principal asking for a role, for a duration, with a reason.
type Request struct {
	ID                string
	Requester         Principal
	Role              string
	Duration          time.Duration // the grant lasts this long from the moment of approval
	Reason            string
	Status            RequestStatus
	ApprovalsRequired int       // the role's quorum when the request was made
	CreatedAt         time.Time // when it was filed
	ExpiresAt         time.Time // a still-pending request expires at this time
	DecidedAt         time.Time // zero while pending
	Message           MessageRef
	Decisions         []Decision // in the order they were made
	GrantID           string     // set once approved
	RemindAt          time.Time  // when to remind undecided approvers; zero when none is due (any more)
	EscalateAt        time.Time  // when to escalate to the role's escalate_to; zero when none is due (any more)
	Escalated         bool       // the role's escalate_to may decide it too
	ExtendsGrantID    string     // set for an extension: approving it moves that grant's end out
	NotifyWhenPosted  bool       // the requester was told it is saved and is owed a DM once it is posted
}

// timeUp reports whether a pending request's time to be decided is over at now. That time
// counts from the moment it was posted: a request its approvers have not seen never expires.
func (r Request) timeUp(now time.Time) bool {
	return r.Message.TS != "" && !now.Before(r.ExpiresAt)
}

// Approvers returns the IDs of those who approved, in order.
func (r Request) Approvers() []string {
	var ids []string
	for _, d := range r.Decisions {
		if d.Approve {
			ids = append(ids, d.Approver)
		}
	}
	return ids
}

// decidedBy reports whether user already approved or denied the request.
func (r Request) decidedBy(user string) bool {
	return slices.ContainsFunc(r.Decisions, func(d Decision) bool { return d.Approver == user })
}

// Decision is one approver's approve or deny on a request.
type Decision struct {
	Approver string
	Approve  bool
	Comment  string // optional on approve, required on deny
	At       time.Time
}

// GrantStatus is where a grant is in its life.
type GrantStatus string

// Grant states: active → expired | revoked.
const (
	GrantActive  GrantStatus = "active"
	GrantExpired GrantStatus = "expired"
	GrantRevoked GrantStatus = "revoked"
)

// Grant is what an approved request becomes: the principal holds the role from CreatedAt
// (the moment of approval) until ExpiresAt.
type Grant struct {
	ID         string
	RequestID  string
	Principal  Principal
	Role       string
	ApprovedBy []string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Status     GrantStatus
	EndedBy    string // who revoked it (SystemActor when it expired)
	EndReason  string
	Extensions int // approved extensions so far

	// Break-glass: the holder took it without approval (ApprovedBy is empty); it needs
	// review by an approver of the role until one acknowledges it.
	BreakGlass  bool
	NeedsReview bool
	ReviewedBy  string    // the approver who reviewed it
	ReviewedAt  time.Time // zero until reviewed
}

// AuditEvent is an append-only record of one state change.
type AuditEvent struct {
	At        time.Time
	Actor     string // Slack user ID, client ID or "gatehouse" for the system itself
	Action    string
	Principal Principal // whose access the event is about
	RequestID string
	GrantID   string
	Reason    string
	Source    string // slack, oidc, cli or system

	// Set by the store when it records the event into the trail; ignored when appending.
	ID       uint64 // position in the trail, from 1
	PrevHash string // Hash of the event before; empty for the first
	Hash     string // ChainHash: seals this event onto PrevHash
}

// Audit actions.
const (
	ActionRequestCreated   = "request.created"
	ActionRequestApproved  = "request.approved"
	ActionRequestDenied    = "request.denied"
	ActionRequestExpired   = "request.expired"
	ActionRequestCancelled = "request.cancelled"
	ActionRequestReminded  = "request.reminded"
	ActionRequestEscalated = "request.escalated"
	ActionDecisionApprove  = "decision.approve"
	ActionDecisionDeny     = "decision.deny"
	ActionGrantCreated     = "grant.created"
	ActionGrantExpired     = "grant.expired"
	ActionGrantExtended    = "grant.extended"
	ActionLoginConfirmed   = "login.confirmed" // a person confirmed a sign-in in Slack
	ActionLoginIssued      = "login.issued"    // a client received tokens
	ActionLoginDenied      = "login.denied"    // a sign-in ended without tokens
)

// Event sources.
const (
	SourceSlack  = "slack"
	SourceOIDC   = "oidc"
	SourceSystem = "system"
)

// SystemActor is the actor of events Gatehouse causes by itself.
const SystemActor = "gatehouse"

// RequestInput is a request as a person typed or picked it, before checking.
type RequestInput struct {
	Role     string
	Duration string // Go syntax: 30m, 2h, 1h30m; empty means the role's default
	Reason   string
	Key      string // optional: identifies the person's action (a Slack trigger ID), so that filing it again files nothing new
}

// MaxTextLength bounds reasons and comments, in characters.
const MaxTextLength = 1000

// checkRequest turns what a person typed into a role and a duration, or says what is wrong.
func (p Policy) checkRequest(in RequestInput) (Role, time.Duration, string, error) {
	var bad InputError
	role, ok := p.Role(strings.ToLower(strings.TrimSpace(in.Role)))
	switch {
	case strings.TrimSpace(in.Role) == "":
		bad.add(FieldRole, "Pick a role.")
	case !ok:
		bad.add(FieldRole, fmt.Sprintf("There is no role called %q. Roles: %s.", clip(in.Role, 40), strings.Join(p.roleNames(), ", ")))
	}
	var d time.Duration
	if ok {
		var problem string
		d, problem = role.checkDuration(in.Duration)
		bad.add(FieldDuration, problem)
	}
	reason, problem := checkText(in.Reason, true)
	bad.add(FieldReason, problem)
	return role, d, reason, bad.orNil()
}

func (p Policy) roleNames() []string {
	names := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		names[i] = r.Name
	}
	return names
}

// checkDuration parses a duration typed for this role and checks it against the role's bounds.
func (r Role) checkDuration(text string) (time.Duration, string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return r.DefaultDuration, ""
	}
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("%q is not a duration. Use Go syntax such as 30m, 2h or 1h30m.", clip(text, 40))
	case d <= 0:
		return 0, "The duration must be positive."
	case d > r.MaxDuration:
		return 0, fmt.Sprintf("%s is longer than %s allows (at most %s).", FormatDuration(d), r.Name, FormatDuration(r.MaxDuration))
	}
	return d, ""
}

// checkText cleans a reason or comment and says what is wrong with it, if anything.
func checkText(text string, required bool) (string, string) {
	text = strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(text); {
	case !utf8.ValidString(text):
		return "", "The text is not valid UTF-8."
	case n == 0 && required:
		return "", "A reason is required."
	case n > MaxTextLength:
		return "", fmt.Sprintf("Keep it to %d characters (this is %d).", MaxTextLength, n)
	}
	for _, c := range text {
		if hiddenRune(c) {
			return "", fmt.Sprintf("The text contains an invisible or control character (U+%04X); type it plainly.", c)
		}
	}
	return text, ""
}

// hiddenRune reports control and formatting characters (bidi overrides, zero-width spaces)
// that can make a reason read differently from what it says. Newlines, tabs and the
// zero-width joiner used by emoji stay allowed.
func hiddenRune(c rune) bool {
	switch {
	case c == '\n' || c == '\t' || c == '\u200d':
		return false
	case unicode.IsControl(c), unicode.Is(unicode.Cf, c), c == utf8.RuneError:
		return true
	}
	return false
}

// clip shortens s for echoing back in an error message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
