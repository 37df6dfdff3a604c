package docker

// WithEndpointLogs makes the runtime follow containers' output through
// the Engine's logs endpoint only, never reading the Engine's own log
// files (which it does where it can: see logs.go). It applies to jobs whose
// output goes through the Engine's log (see WithEngineLogs and direct.go).
func WithEndpointLogs() Option { return func(r *Runtime) { r.noLogFile = true } }

// WithEngineLogs makes every job's output go through the Engine's log
// driver, followed as logs.go describes, even where the job could write
// its log file directly.
func WithEngineLogs() Option { return func(r *Runtime) { r.engineLogs = true } }
