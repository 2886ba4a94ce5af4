package app

import "time"

// Action is a person's action in Slack that Gatehouse acknowledges before carrying it out (a
// slash command, a button click). It is recorded before the acknowledgement and removed once
// done, so an action acknowledged by a process that then died is finished after a restart.
type Action struct {
	Key        string // identifies it across Slack's redeliveries (its trigger ID)
	Kind       string // the Socket Mode envelope type
	Payload    []byte // as Slack sent it
	ReceivedAt time.Time
}
