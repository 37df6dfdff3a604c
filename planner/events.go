package planner

// Event types (Event.Type) of apply's event stream.
const (
	EventStepStart   = "step_start"   // a step began
	EventStepDone    = "step_done"    // a step succeeded
	EventStepFailed  = "step_failed"  // a step failed
	EventStepSkipped = "step_skipped" // a step did not run: one it needs failed
	EventProgress    = "progress"     // what a slow step is doing
	EventFailover    = "failover"     // a create moved on to the next offer
	EventRetry       = "retry"        // a call is retried after a wait
	EventApplyDone   = "apply_done"   // the apply ended, with its counts
)
