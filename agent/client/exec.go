package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/dstackai/dstack-go/agent"
)

// Exec runs a command in a running job: it sends stdin to the command
// until stdin ends, copies what the command prints to stdout, and returns
// the command's exit code.
func (c *Client) Exec(ctx context.Context, id string, req agent.ExecRequest, stdin io.Reader, stdout io.Writer) (int, error) {
	path := jobPath(id) + "/exec"
	hreq, err := c.request(ctx, http.MethodPost, path, nil, req)
	if err != nil {
		return 0, err
	}
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", agent.ExecUpgrade)
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return 0, responseError(http.MethodPost, path, resp)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return 0, fmt.Errorf("POST %s: the agent's answer cannot carry a stream", path)
	}
	defer conn.Close()
	var mu sync.Mutex
	send := func(kind byte, p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		return agent.WriteFrame(conn, kind, p)
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 && send(agent.FrameInput, buf[:n]) != nil {
				return
			}
			if err != nil {
				_ = send(agent.FrameEOF, nil)
				return
			}
		}
	}()
	for {
		kind, payload, err := agent.ReadFrame(conn)
		if err != nil {
			return 0, fmt.Errorf("exec in job %s: the stream ended early: %w", id, err)
		}
		switch kind {
		case agent.FrameOutput:
			if _, err := stdout.Write(payload); err != nil {
				return 0, err
			}
		case agent.FrameExit:
			return strconv.Atoi(string(payload))
		case agent.FrameError:
			return 0, fmt.Errorf("exec in job %s: %s", id, payload)
		}
	}
}
