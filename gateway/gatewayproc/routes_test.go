package gatewayproc

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/state"
)

func specAttr(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"spec": m}
}

func TestRoutesFromState(t *testing.T) {
	st := state.New("test")
	st.Tokens = []state.Token{{Name: "ci", Hash: gateway.HashToken("t1")}}
	st.Put(&state.Resource{Address: "gateway.gw", Attributes: specAttr(t, `{"type":"gateway","backend":"local","region":"local","domain":"example.test"}`)})
	st.Put(&state.Resource{Address: "service.llm",
		Attributes: specAttr(t, `{"type":"service","port":{"container_port":8000},"model":{"name":"m1","format":"openai"},"strip_prefix":false,
			"rate_limits":[{"prefix":"/v1","rps":2,"burst":3,"key":{"type":"header","header":"X-Key"}}]}`),
		Instances: []*state.Instance{
			{Index: 0, Status: "running", Attributes: map[string]any{"ip": "127.0.0.1", "ports": "32768:8000", "created_at": "2026-01-02T03:04:05Z"}},
			{Index: 1, Status: "creating", Attributes: map[string]any{"ip": "127.0.0.1", "ports": "32769:8000"}},
			{Index: 2, Status: "running", Attributes: map[string]any{"ip": "10.0.0.5", "ports": "9000:9000,32770:8000"}},
		}})
	st.Put(&state.Resource{Address: "service.open", Attributes: specAttr(t, `{"type":"service","port":{"container_port":80},"auth":false,"https":false}`)})
	st.Put(&state.Resource{Address: "task.t", Attributes: specAttr(t, `{"type":"task","commands":["x"]}`)})
	tab, set, err := Routes(st)
	if err != nil {
		t.Fatal(err)
	}
	if set.Domain != "example.test" || !set.ACME || tab.Domain != "example.test" {
		t.Fatalf("settings %+v, domain %q", set, tab.Domain)
	}
	if len(tab.Tokens) != 1 || tab.Tokens[0] != gateway.HashToken("t1") {
		t.Fatalf("tokens %v", tab.Tokens)
	}
	if len(tab.Services) != 2 {
		t.Fatalf("services %+v", tab.Services)
	}
	llm, open := tab.Services[0], tab.Services[1]
	if !llm.Auth || !llm.HTTPS || !llm.KeepPrefix || llm.Model == nil || llm.Model.Name != "m1" || llm.Model.Created != 1767323045 {
		t.Fatalf("llm %+v model %+v", llm, llm.Model)
	}
	if got := llm.Replicas; len(got) != 2 || got[0] != "http://127.0.0.1:32768" || got[1] != "http://10.0.0.5:32770" {
		t.Fatalf("replicas (running ones, at the service port's host side): %v", got)
	}
	if rl := llm.RateLimits; len(rl) != 1 || rl[0] != (gateway.RateLimit{Prefix: "/v1", RPS: 2, Burst: 3, Header: "X-Key"}) {
		t.Fatalf("rate limits %+v", rl)
	}
	if open.Auth || open.HTTPS || open.KeepPrefix || len(open.Replicas) != 0 {
		t.Fatalf("open %+v", open)
	}
}

func TestArgs(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	got := strings.Join(Args(env(), Settings{}), " ")
	if got != "-listen 127.0.0.1:8090" {
		t.Fatalf("no domain: %q", got)
	}
	got = strings.Join(Args(env("DSTACK_GATEWAY_LISTEN", ":80", "DSTACK_ACME_CA", "https://ca/dir"), Settings{Domain: "example.com", ACME: true}), " ")
	if got != "-listen :80 -acme -https-listen :443 -acme-ca https://ca/dir" {
		t.Fatalf("acme: %q", got)
	}
	got = strings.Join(Args(env("DSTACK_GATEWAY_TLS_CERT", "/c.pem", "DSTACK_GATEWAY_TLS_KEY", "/k.pem", "DSTACK_GATEWAY_HTTPS_LISTEN", ":8443"), Settings{Domain: "example.com", ACME: true}), " ")
	if got != "-listen 127.0.0.1:8090 -tls-cert /c.pem -tls-key /k.pem -https-listen :8443" {
		t.Fatalf("certificate files: %q", got)
	}
}
