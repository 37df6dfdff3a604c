package local

import (
	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/providers"
)

// JobSpec decodes a create request and turns it into what the agent runs.
func JobSpec(req providers.CreateRequest) (agent.JobSpec, error) {
	r, err := decodeRun(req)
	if err != nil {
		return agent.JobSpec{}, err
	}
	return jobSpec(req, r)
}
