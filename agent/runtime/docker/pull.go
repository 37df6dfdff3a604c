package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/go-units"

	"github.com/dstackai/dstack-go/agent"
)

// progressInterval is how often pull progress is reported at most.
const progressInterval = 500 * time.Millisecond

// ensureImage pulls spec.Image unless the Engine has it already.
func (r *Runtime) ensureImage(ctx context.Context, spec agent.JobSpec, progress func(agent.JobState, string)) error {
	if _, err := r.cli.ImageInspect(ctx, spec.Image); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspecting image %s: %w", spec.Image, err)
	}
	progress(agent.StatePulling, "pulling image "+spec.Image)
	opts := image.PullOptions{}
	if spec.RegistryAuth != nil && (spec.RegistryAuth.Username != "" || spec.RegistryAuth.Password != "") {
		auth, err := encodeAuth(spec.Image, spec.RegistryAuth.Username, spec.RegistryAuth.Password)
		if err != nil {
			return fmt.Errorf("image pull failed: %w", err)
		}
		opts.RegistryAuth = auth
	}
	body, err := r.cli.ImagePull(ctx, spec.Image, opts)
	if err != nil {
		return fmt.Errorf("image pull failed: %s", engineMsg(err))
	}
	defer body.Close()
	if err := readPull(body, func(s string) { progress(agent.StatePulling, s) }, spec.Image); err != nil {
		return fmt.Errorf("image pull failed: %s", engineMsg(err))
	}
	// A pull that said nothing wrong but left no image (it happens with
	// some registries' odd manifests) must not fail later as "no such
	// image" at create.
	if _, err := r.cli.ImageInspect(ctx, spec.Image); err != nil {
		return fmt.Errorf("image pull failed: %s", engineMsg(err))
	}
	return nil
}

// encodeAuth encodes credentials for the registry that image lives in as
// the X-Registry-Auth header wants them.
func encodeAuth(img, user, password string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return "", err
	}
	server := reference.Domain(ref)
	if server == "docker.io" {
		// The Engine and the Docker Hub know the Hub by this address.
		server = "https://index.docker.io/v1/"
	}
	return registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: password, ServerAddress: server})
}

// pullMessage is one line of the Engine's pull progress stream.
type pullMessage struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string `json:"error"`
}

type layer struct {
	status         string
	current, total int64
	done           bool
}

// readPull reads the pull progress stream to its end, reporting a summary
// of the layers' progress at most every progressInterval (and whenever a
// layer completes), and returns the error the stream ends with, if any.
func readPull(r io.Reader, report func(string), img string) error {
	dec := json.NewDecoder(r)
	layers := map[string]*layer{}
	var order []string
	var last time.Time
	summary := func() string {
		var done, n int
		var cur, total int64
		for _, id := range order {
			l := layers[id]
			n++
			if l.done {
				done++
			}
			if l.total > 0 {
				total += l.total
				if l.done {
					cur += l.total
				} else {
					cur += min(l.current, l.total)
				}
			}
		}
		s := fmt.Sprintf("pulling %s: %d/%d layers", img, done, n)
		if total > 0 {
			s += fmt.Sprintf(", %s/%s", units.HumanSize(float64(cur)), units.HumanSize(float64(total)))
		}
		return s
	}
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if m.ID == "" || strings.HasPrefix(m.Status, "Pulling from") || strings.HasPrefix(m.Status, "Digest:") || strings.HasPrefix(m.Status, "Status:") {
			continue
		}
		l := layers[m.ID]
		if l == nil {
			l = &layer{}
			layers[m.ID] = l
			order = append(order, m.ID)
		}
		l.status = m.Status
		completed := false
		switch m.Status {
		case "Pull complete", "Already exists":
			completed = !l.done
			l.done = true
		case "Downloading":
			if m.ProgressDetail.Total > 0 {
				l.total = m.ProgressDetail.Total
			}
			l.current = m.ProgressDetail.Current
		case "Download complete":
			if l.total > 0 {
				l.current = l.total
			}
		}
		if now := time.Now(); completed || now.Sub(last) >= progressInterval {
			last = now
			report(summary())
		}
	}
}
