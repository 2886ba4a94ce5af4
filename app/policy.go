// Package app holds Gatehouse's domain: roles and policy, access requests, decisions, grants
// and audit events, and the use cases that change them. It imports only the standard library;
// Slack, SQL and OpenID Connect live in adapter packages that talk to it in these types.
package app

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Role is an elevated entitlement defined in the policy file.
type Role struct {
	Name              string
	Description       string
	Approvers         []string // Slack user IDs (U…/W…) and user-group IDs (S…)
	ApprovalsRequired int      // distinct approvers needed; the requester never counts
	DefaultDuration   time.Duration
	MaxDuration       time.Duration
	RequestTTL        time.Duration // a pending request expires after this
	Channel           string        // approval channel; empty means the policy's default
	Audience          []string      // added to the access token's aud
	RemindAfter       time.Duration
	EscalateAfter     time.Duration
	EscalateTo        []string
	MaxExtensions     int
	BreakGlass        bool
	BreakGlassUsers   []string
}

// Policy is the set of roles, the people with powers over all of them, and what each
// OAuth client may ask for.
type Policy struct {
	ApprovalsChannel string   // default channel for approval messages
	Admins           []string // may revoke any grant and see every request
	Roles            []Role
	Clients          []ClientPolicy
}

// ClientPolicy is what the policy says about an OAuth client.
type ClientPolicy struct {
	ID      string
	Service bool     // asks for itself: tokens have its ID as subject
	Roles   []string // the roles it may ask for; empty means any (still approved by people)
}

// Principal returns who a token's subject is: a service client, or else a Slack user.
func (p Policy) Principal(subject string) Principal {
	for _, c := range p.Clients {
		if c.ID == subject && c.Service {
			return Principal{Kind: PrincipalService, ID: subject}
		}
	}
	return User(subject)
}

// ClientRoles returns the roles the scopes ask for, checking them as RolesOfScopes does and
// that the client may ask for each: a role outside its list is an *InputError on FieldRole.
func (p Policy) ClientRoles(clientID string, scopes []string) ([]string, error) {
	roles, err := p.RolesOfScopes(scopes)
	if err != nil {
		return nil, err
	}
	for _, c := range p.Clients {
		if c.ID != clientID || len(c.Roles) == 0 {
			continue
		}
		for _, r := range roles {
			if !slices.Contains(c.Roles, r) {
				return nil, &InputError{Problems: []FieldProblem{{Field: FieldRole, Message: fmt.Sprintf("Client %s may not ask for role %s.", clip(clientID, 64), r)}}}
			}
		}
	}
	return roles, nil
}

// Subcommands are the words /access reserves; no role may be named like one of them.
var Subcommands = []string{"help", "login", "list", "revoke"}

// Defaults applied by Policy.WithDefaults to settings a role leaves out.
const (
	DefaultApprovalsRequired = 1
	DefaultDuration          = time.Hour
	DefaultRequestTTL        = time.Hour
)

var (
	roleNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	userIDPattern   = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDPattern  = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	channelPattern  = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
)

// Limits that keep every role presentable in Slack: a select holds 100 options, and each
// decision is one block of an approval message (at most 50).
const (
	MaxRoles             = 100
	MaxApprovalsRequired = 20
)

// maxRoleNameLength keeps a role name usable as a Slack option value (≤ 75) with room to spare.
const maxRoleNameLength = 64

// Role returns the role with the given name.
func (p Policy) Role(name string) (Role, bool) {
	for _, r := range p.Roles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// ChannelFor returns the channel where requests for role are posted.
func (p Policy) ChannelFor(role Role) string {
	if role.Channel != "" {
		return role.Channel
	}
	return p.ApprovalsChannel
}

// WithDefaults returns a copy of p with unset role settings filled in.
func (p Policy) WithDefaults() Policy {
	roles := make([]Role, len(p.Roles))
	for i, r := range p.Roles {
		if r.ApprovalsRequired == 0 {
			r.ApprovalsRequired = DefaultApprovalsRequired
		}
		if r.DefaultDuration == 0 {
			r.DefaultDuration = DefaultDuration
			if r.MaxDuration > 0 && r.MaxDuration < DefaultDuration {
				r.DefaultDuration = r.MaxDuration
			}
		}
		if r.MaxDuration == 0 {
			r.MaxDuration = r.DefaultDuration
		}
		if r.RequestTTL == 0 {
			r.RequestTTL = DefaultRequestTTL
		}
		roles[i] = r
	}
	p.Roles = roles
	return p
}

// Validate reports every problem in the policy at once, one per line, or nil.
// Call it on a policy that went through WithDefaults.
func (p Policy) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if p.ApprovalsChannel != "" && !channelPattern.MatchString(p.ApprovalsChannel) {
		add("approvals_channel %q is not a Slack channel ID (C… or G…)", p.ApprovalsChannel)
	}
	for _, id := range p.Admins {
		if !userIDPattern.MatchString(id) {
			add("admins: %q is not a Slack user ID (U… or W…)", id)
		}
	}
	if len(p.Roles) == 0 {
		add("roles: at least one role is required")
	}
	if len(p.Roles) > MaxRoles {
		add("roles: at most %d roles (a Slack select holds %d options)", MaxRoles, MaxRoles)
	}
	seen := map[string]bool{}
	for i, r := range p.Roles {
		where := fmt.Sprintf("roles[%d]", i)
		if r.Name != "" {
			where = fmt.Sprintf("role %q", r.Name)
		}
		switch {
		case r.Name == "":
			add("%s: name is required", where)
		case len(r.Name) > maxRoleNameLength || !roleNamePattern.MatchString(r.Name):
			add("%s: name must match [a-z0-9][a-z0-9-]* and be at most %d characters", where, maxRoleNameLength)
		case slices.Contains(Subcommands, r.Name):
			add("%s: name clashes with the /access sub-command %q", where, r.Name)
		case seen[r.Name]:
			add("%s: defined more than once", where)
		}
		seen[r.Name] = true
		problems = append(problems, p.checkRole(where, r)...)
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return &PolicyError{Problems: problems}
}

// checkRole reports the problems of role r, named where in the messages, beyond its name.
func (p Policy) checkRole(where string, r Role) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(r.Description) == "" {
		add("%s: description is required (approvers and requesters see it)", where)
	}
	if r.Channel == "" && p.ApprovalsChannel == "" {
		add("%s: no channel and no approvals_channel: approval messages would have nowhere to go", where)
	}
	if r.Channel != "" && !channelPattern.MatchString(r.Channel) {
		add("%s: channel %q is not a Slack channel ID (C… or G…)", where, r.Channel)
	}
	problems = append(problems, checkApprovers(where+": approvers", r.Approvers)...)
	if len(r.Approvers) == 0 {
		add("%s: approvers must name at least one user or user group", where)
	}
	users, groups := countApprovers(r.Approvers)
	switch {
	case r.ApprovalsRequired < 1:
		add("%s: approvals_required must be at least 1", where)
	case r.ApprovalsRequired > MaxApprovalsRequired:
		add("%s: approvals_required must be at most %d", where, MaxApprovalsRequired)
	case users > 0 && groups == 0 && r.ApprovalsRequired > users:
		add("%s: approvals_required is %d but only %d distinct approvers are listed", where, r.ApprovalsRequired, users)
	}
	for name, d := range map[string]time.Duration{
		"default_duration": r.DefaultDuration, "max_duration": r.MaxDuration, "request_ttl": r.RequestTTL,
		"remind_after": r.RemindAfter, "escalate_after": r.EscalateAfter,
	} {
		if d < 0 {
			add("%s: %s must not be negative", where, name)
		}
	}
	if r.DefaultDuration > r.MaxDuration {
		add("%s: default_duration %s is longer than max_duration %s", where, FormatDuration(r.DefaultDuration), FormatDuration(r.MaxDuration))
	}
	if r.MaxDuration > MaxGrantDuration {
		add("%s: max_duration %s is longer than Gatehouse allows (%s)", where, FormatDuration(r.MaxDuration), FormatDuration(MaxGrantDuration))
	}
	if r.EscalateAfter > 0 && len(r.EscalateTo) == 0 {
		add("%s: escalate_after needs escalate_to", where)
	}
	problems = append(problems, checkApprovers(where+": escalate_to", r.EscalateTo)...)
	if r.MaxExtensions < 0 {
		add("%s: max_extensions must not be negative", where)
	}
	if r.BreakGlass && len(r.BreakGlassUsers) == 0 {
		add("%s: break_glass needs break_glass_users", where)
	}
	if !r.BreakGlass && len(r.BreakGlassUsers) > 0 {
		add("%s: break_glass_users is set but break_glass is not", where)
	}
	problems = append(problems, checkApprovers(where+": break_glass_users", r.BreakGlassUsers)...)
	return problems
}

// MaxGrantDuration bounds every role's max_duration: elevated access is meant to be short.
const MaxGrantDuration = 30 * 24 * time.Hour

// PolicyError lists every problem found in a policy.
type PolicyError struct{ Problems []string }

func (e *PolicyError) Error() string { return strings.Join(e.Problems, "\n") }

func checkApprovers(where string, ids []string) []string {
	var problems []string
	for _, id := range ids {
		if !userIDPattern.MatchString(id) && !groupIDPattern.MatchString(id) {
			problems = append(problems, fmt.Sprintf("%s: %q is neither a Slack user ID (U…/W…) nor a user-group ID (S…)", where, id))
		}
	}
	return problems
}

func countApprovers(ids []string) (users, groups int) {
	distinct := map[string]bool{}
	for _, id := range ids {
		if groupIDPattern.MatchString(id) {
			groups++
		} else if !distinct[id] {
			distinct[id] = true
			users++
		}
	}
	return users, groups
}

// durationLadder holds the durations offered in the request modal, before each role's bounds.
var durationLadder = []time.Duration{
	15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
	12 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour, 7 * 24 * time.Hour,
}

// DurationChoices lists the durations a requester may pick for the role, shortest first:
// the usual steps up to max_duration, plus the role's default and maximum.
func (r Role) DurationChoices() []time.Duration {
	var choices []time.Duration
	for _, d := range durationLadder {
		if d < r.MaxDuration {
			choices = append(choices, d)
		}
	}
	choices = append(choices, r.MaxDuration, r.DefaultDuration)
	slices.Sort(choices)
	return slices.Compact(choices)
}

// CommonDurations offers the durations every one of the roles allows — the choices of the
// role with the shortest max_duration — with the shortest default preselected. One request
// form for several roles (a sign-in asking for more than one) uses it.
func CommonDurations(roles []Role) ([]time.Duration, time.Duration) {
	shortest := slices.MinFunc(roles, func(a, b Role) int { return cmp.Compare(a.MaxDuration, b.MaxDuration) })
	preselected := slices.MinFunc(roles, func(a, b Role) int { return cmp.Compare(a.DefaultDuration, b.DefaultDuration) }).DefaultDuration
	choices := shortest.DurationChoices()
	if !slices.Contains(choices, preselected) {
		choices = append(choices, preselected)
		slices.Sort(choices)
	}
	return choices, preselected
}

// FormatDuration writes d the way people type it: 1h, 90m → 1h30m, 45s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
