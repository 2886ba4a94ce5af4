package app

import "errors"

// Sentinel errors returned by the service and by store implementations. Adapters turn them
// into words for people (handlers) or protocol errors (oidc) in one place each.
var (
	// ErrNotFound: no request, grant or other record with that ID.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record changed between read and write; the write did not happen.
	ErrConflict = errors.New("changed concurrently")
	// ErrNotApprover: the user is not among the role's approvers.
	ErrNotApprover = errors.New("not an approver for this role")
	// ErrSelfApproval: the requester tried to decide their own request.
	ErrSelfApproval = errors.New("requesters cannot decide their own request")
	// ErrAlreadyDecided: this approver already approved or denied the request.
	ErrAlreadyDecided = errors.New("already decided by this approver")
	// ErrNotPending: the request was already approved, denied, expired or cancelled.
	ErrNotPending = errors.New("request is no longer pending")
	// ErrUnknownRole: a stored request names a role the policy no longer has.
	ErrUnknownRole = errors.New("role is not in the policy")
)

// InputError says what is wrong with what a person typed, field by field, so a form can
// show each message next to its input. Nothing was changed when it is returned.
type InputError struct {
	Problems []FieldProblem
}

// FieldProblem is one field's problem, in words meant for the person who typed it.
type FieldProblem struct {
	Field   string // one of FieldRole, FieldDuration, FieldReason, FieldComment
	Message string
}

// Fields of the request and decision forms.
const (
	FieldRole     = "role"
	FieldDuration = "duration"
	FieldReason   = "reason"
	FieldComment  = "comment"
)

func (e *InputError) Error() string {
	msg := "invalid input"
	for _, p := range e.Problems {
		msg += "; " + p.Field + ": " + p.Message
	}
	return msg
}

// add records a problem; it is a no-op for an empty message.
func (e *InputError) add(field, message string) {
	if message != "" {
		e.Problems = append(e.Problems, FieldProblem{Field: field, Message: message})
	}
}

// orNil returns e as an error only when it holds problems.
func (e *InputError) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}
