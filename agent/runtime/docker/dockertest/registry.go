package dockertest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
)

// Registry is a minimal image registry (the read side of the OCI
// distribution API) that serves the busybox image under any names added
// with AddImage, asking for HTTP basic auth when it has a username. It
// listens on 127.0.0.1, which the Engine trusts over plain HTTP, so tests
// can pull with credentials and progress without a real registry.
type Registry struct {
	// Host is the registry's address, "127.0.0.1:PORT": image references
	// start with it.
	Host string

	user, password string
	mu             sync.Mutex
	manifests      map[string][]byte // "repo:tag" -> manifest
	blobs          map[string][]byte // digest -> content
	// Unauthorized counts requests refused for want of the right
	// credentials; Authorized, those that carried them.
	Unauthorized, Authorized atomic.Int64
}

// NewRegistry starts a registry for t; with a non-empty user every request
// must carry it and password (basic auth).
func NewRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	reg := &Registry{user: user, password: password, manifests: map[string][]byte{}, blobs: map[string][]byte{}}
	srv := httptest.NewUnstartedServer(reg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dockertest: registry: %v", err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	reg.Host = ln.Addr().String()
	return reg
}

// AddImage serves the busybox image (see Image) as repo:tag and returns its
// reference. The Engine's copy, once pulled, is removed when t ends.
func (reg *Registry) AddImage(t testing.TB, repo, tag string) string {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		unavailable(t, "dockertest: no static busybox at %s (apt-get install busybox-static)", BusyboxPath)
	}
	rootfs, err := Rootfs(BusyboxPath)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(rootfs)
	zw.Close()
	layer := gz.Bytes()
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Cmd": []string{"sh"},
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(rootfs)}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": digest(config)},
		"layers": []map[string]any{
			{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": digest(layer)},
		},
	})
	reg.mu.Lock()
	reg.blobs[digest(config)] = config
	reg.blobs[digest(layer)] = layer
	reg.manifests[repo+":"+tag] = manifest
	reg.blobs[digest(manifest)] = manifest
	reg.mu.Unlock()
	ref := reg.Host + "/" + repo + ":" + tag
	c := Client(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return ref
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ServeHTTP answers GET and HEAD of /v2/, /v2/<repo>/manifests/<tag or
// digest> and /v2/<repo>/blobs/<digest>.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reg.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != reg.user || p != reg.password {
			reg.Unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="dstack-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.Authorized.Add(1)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	if path == "" || path == r.URL.Path {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var body []byte
	var ctype string
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		repo, ref := path[:i], path[i+len("/manifests/"):]
		body = reg.manifests[repo+":"+ref]
		if body == nil && strings.HasPrefix(ref, "sha256:") {
			body = reg.blobs[ref]
		}
		ctype = "application/vnd.docker.distribution.manifest.v2+json"
	} else if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		body = reg.blobs[path[i+len("/blobs/"):]]
		ctype = "application/octet-stream"
	}
	if body == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Docker-Content-Digest", digest(body))
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}
