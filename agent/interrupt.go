package agent

import (
	"time"
)

// Interrupt tells the manager that the machine is being taken away (a
// spot interruption notice): every job that has not ended is stopped
// (SIGTERM, then SIGKILL after its grace period, or at n.Deadline when
// that comes first) and ends failed with Termination "interruption", so
// that its submitter's retry policy can run it elsewhere; a job still
// starting is cancelled. Jobs submitted afterwards are refused with
// ErrInterrupted. Only the first notice counts. Interrupt returns at
// once; the stops go on in the background.
func (m *Manager) Interrupt(n Interruption) {
	if n.At.IsZero() {
		n.At = time.Now().UTC()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.interruption != nil || m.closed {
		return
	}
	m.interruption = &n
	m.log.Warn("interruption notice: stopping every job", "notice", n.Notice, "deadline", n.Deadline)
	for _, j := range m.jobs {
		if j.rec.Job.State.Finished() || j.rec.StopRequested {
			continue
		}
		j.rec.Interrupted = n.Notice
		grace := j.stopGrace
		if !n.Deadline.IsZero() {
			grace = max(min(grace, time.Until(n.Deadline)), 0)
		}
		j.stopGrace = grace
		m.persist(j)
		id := j.rec.Job.Spec.ID
		switch {
		case j.handle != nil:
			h := j.handle
			m.watchers.Add(1) // under m.mu, so never after Close's Wait began
			go func() {
				defer m.watchers.Done()
				m.log.Info("stopping job for the interruption", "job", id, "grace", grace)
				if err := h.Stop(m.lifetime, grace); err != nil && m.lifetime.Err() == nil {
					m.log.Error("stop failed", "job", id, "err", err)
				}
			}()
		case j.cancelStart != nil:
			j.cancelStart() // run records the job as interrupted once Start returns
		}
	}
}

// Interruption returns the interruption notice the manager got, or nil.
func (m *Manager) Interruption() *Interruption {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.interruption == nil {
		return nil
	}
	n := *m.interruption
	return &n
}
