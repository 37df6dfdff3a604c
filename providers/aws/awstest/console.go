package awstest

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
)

// HostKeyMachine is a Machine whose SSH host keys the console shows, as
// cloud-init prints them when an instance boots.
type HostKeyMachine interface {
	Machine
	// HostKeys returns the machine's public host keys, authorized_keys
	// format ("ssh-ed25519 AAAA...").
	HostKeys() []string
}

type getConsoleOutputResponse struct {
	XMLName xml.Name `xml:"GetConsoleOutputResponse"`
	Response
	InstanceID string `xml:"instanceId"`
	Timestamp  string `xml:"timestamp"`
	Output     string `xml:"output,omitempty"`
}

// RewriteConsole makes fn the console's printer: it gets an instance's
// ID and the console output its boot printed ("" while it has none) and
// returns what GetConsoleOutput shows; nil restores the boot's.
func (f *Fake) RewriteConsole(fn func(instanceID, text string) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.consoleRewrite = fn
}

// getConsoleOutput answers GetConsoleOutput: the console of a booted
// instance as cloud-init leaves it, its SSH host keys between
// "-----BEGIN SSH HOST KEY KEYS-----" and "-----END SSH HOST KEY
// KEYS-----", base64-encoded as EC2 serves it; nothing while it is
// pending.
func (f *Fake) getConsoleOutput(r *Request) (any, error) {
	id := r.Get("InstanceId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	inst := reg.instances[id]
	if inst == nil {
		return nil, Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	resp := getConsoleOutputResponse{Response: NewResponse(), InstanceID: id, Timestamp: f.now().UTC().Format("2006-01-02T15:04:05.000Z")}
	text := ""
	if inst.machine != nil {
		text = bootConsole(inst)
	}
	if f.consoleRewrite != nil {
		text = f.consoleRewrite(id, text)
	}
	if text != "" {
		resp.Output = base64.StdEncoding.EncodeToString([]byte(text))
	}
	return resp, nil
}

// bootConsole is the console output of an instance's boot.
func bootConsole(inst *instance) string {
	host := "ip-" + strings.ReplaceAll(inst.PrivateIP, ".", "-")
	var b strings.Builder
	fmt.Fprintf(&b, "[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02-amd64-071) #23-Ubuntu SMP\n")
	fmt.Fprintf(&b, "[    4.211342] cloud-init[612]: Cloud-init v. 24.4 running 'init' at %s. Up 4.19 seconds.\n", inst.Launched.UTC().Format("Mon, 02 Jan 2006 15:04:05 +0000"))
	if hk, ok := inst.machine.(HostKeyMachine); ok {
		b.WriteString("#############################################################\n")
		b.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n")
		for _, k := range hk.HostKeys() {
			fmt.Fprintf(&b, "%s root@%s\n", strings.TrimSpace(k), host)
		}
		b.WriteString("-----END SSH HOST KEY KEYS-----\n")
		b.WriteString("#############################################################\n")
	}
	fmt.Fprintf(&b, "[   12.803115] cloud-init[901]: Cloud-init v. 24.4 finished. Datasource DataSourceEc2Local. Up 12.79 seconds\n")
	return b.String()
}
