package planner_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
)

// model is a random configuration the property test edits.
type model struct {
	fleets   map[string]*fleetM
	volumes  map[string]*volumeM
	services map[string]*serviceM
	tasks    map[string]*taskM
	next     int
}

type fleetM struct {
	nodes int
	gpu   string
	tag   string
}
type volumeM struct {
	size int
	tag  string
}
type serviceM struct {
	version, replicas, gpus int
	tag                     string
}
type taskM struct {
	cmd, gpus int
}

func (m *model) name(prefix string) string {
	m.next++
	return prefix + strconv.Itoa(m.next)
}

func (m *model) yaml() string {
	var docs []string
	for _, n := range sortedNames(m.fleets) {
		f := m.fleets[n]
		docs = append(docs, fmt.Sprintf("type: fleet\nname: %s\nnodes: %d\nresources:\n  gpu: %s\ntags: {team: %q}\n", n, f.nodes, f.gpu, f.tag))
	}
	for _, n := range sortedNames(m.volumes) {
		v := m.volumes[n]
		docs = append(docs, fmt.Sprintf("type: volume\nname: %s\nbackend: aws\nregion: us-east-1\nsize: %dGB\ntags: {team: %q}\n", n, v.size, v.tag))
	}
	for _, n := range sortedNames(m.services) {
		s := m.services[n]
		docs = append(docs, fmt.Sprintf("type: service\nname: %s\nimage: vllm:%d\nport: 8000\nreplicas: %d\ncommands: [serve]\nresources:\n  gpu: A100:%d\ntags: {team: %q}\n", n, s.version, s.replicas, s.gpus, s.tag))
	}
	for _, n := range sortedNames(m.tasks) {
		t := m.tasks[n]
		docs = append(docs, fmt.Sprintf("type: task\nname: %s\ncommands: [\"echo %d\"]\nresources:\n  gpu: A100:%d\n", n, t.cmd, t.gpus))
	}
	return strings.Join(docs, "---\n")
}

func sortedNames[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func pick[V any](r *rand.Rand, m map[string]V) (string, V, bool) {
	names := sortedNames(m)
	var zero V
	if len(names) == 0 {
		return "", zero, false
	}
	n := names[r.IntN(len(names))]
	return n, m[n], true
}

// edit makes one random change and says what it was.
func (m *model) edit(r *rand.Rand) string {
	switch r.IntN(12) {
	case 0:
		n := m.name("f")
		m.fleets[n] = &fleetM{nodes: 1 + r.IntN(3), gpu: []string{"A100:8", "A100:4", "H100:8"}[r.IntN(3)], tag: "a"}
		return "add fleet " + n
	case 1:
		n := m.name("v")
		m.volumes[n] = &volumeM{size: 100, tag: "a"}
		return "add volume " + n
	case 2:
		n := m.name("s")
		m.services[n] = &serviceM{version: 1, replicas: 1 + r.IntN(3), gpus: 1 + r.IntN(2), tag: "a"}
		return "add service " + n
	case 3:
		n := m.name("t")
		m.tasks[n] = &taskM{cmd: 1, gpus: r.IntN(2)}
		return "add task " + n
	case 4:
		if n, _, ok := pick(r, m.fleets); ok {
			delete(m.fleets, n)
			return "remove fleet " + n
		}
	case 5:
		if n, _, ok := pick(r, m.services); ok {
			delete(m.services, n)
			return "remove service " + n
		}
	case 6:
		if n, s, ok := pick(r, m.services); ok {
			s.version++
			return "new image for " + n
		}
	case 7:
		if n, s, ok := pick(r, m.services); ok {
			s.replicas = 1 + r.IntN(4)
			return "replicas of " + n
		}
	case 8:
		if n, f, ok := pick(r, m.fleets); ok {
			f.nodes = 1 + r.IntN(4)
			return "nodes of " + n
		}
	case 9:
		if n, v, ok := pick(r, m.volumes); ok {
			if r.IntN(2) == 0 {
				v.tag += "x"
				return "tags of " + n
			}
			v.size += 100
			return "size of " + n
		}
	case 10:
		if n, t, ok := pick(r, m.tasks); ok {
			t.cmd++
			return "command of " + n
		}
	case 11:
		if n, _, ok := pick(r, m.volumes); ok {
			delete(m.volumes, n)
			return "remove volume " + n
		}
	}
	return "nothing"
}

// TestRandomEditsConverge is the property: after any sequence of edits
// (and outside interruptions), plan → apply → plan shows no changes and
// the cloud holds exactly what the state records.
func TestRandomEditsConverge(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 20
	}
	if v := os.Getenv("DSTACK_PROPERTY_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			w := newWorld(t, &sim.Config{JobDuration: ptr(sim.Duration(0))})
			m := &model{fleets: map[string]*fleetM{}, volumes: map[string]*volumeM{}, services: map[string]*serviceM{}, tasks: map[string]*taskM{}}
			var history []string
			for i := range rounds {
				for range 1 + r.IntN(3) {
					history = append(history, m.edit(r))
				}
				if i%7 == 6 {
					if live := liveObjects(t, w.cloud); len(live) > 0 {
						o := live[r.IntN(len(live))]
						if o.Kind == providers.KindInstance {
							if err := w.cloud.Interrupt(o.ID, "spot interruption"); err != nil {
								t.Fatal(err)
							}
							history = append(history, "interrupt "+o.Address)
						}
					}
				}
				cfg := w.config(map[string]string{"main.dstack.yml": m.yaml()})
				func() {
					defer func() {
						if t.Failed() {
							t.Logf("round %d, edits so far: %s\nconfig:\n%s", i, strings.Join(history, "; "), m.yaml())
						}
					}()
					w.converge(cfg)
				}()
				if t.Failed() {
					return
				}
			}
		})
	}
}
