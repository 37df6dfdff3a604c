package hclconf_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

const sensitiveConfig = `variable "hf_token" {
  type      = string
  sensitive = true
}

variable "plain" {
  default = "visible"
}

locals {
  header = "Bearer ${var.hf_token}"
}

task "t" {
  image    = "python:3.12"
  commands = ["echo start", "curl -H '${local.header}' https://example.com", "echo ${var.plain}"]
  env = {
    HF_TOKEN = var.hf_token
    LEVEL    = "debug"
    UPPER    = upper(var.hf_token)
  }
  registry_auth {
    username = "me"
    password = "literal-password"
  }
}

task "list" {
  commands = ["true"]
  env      = ["A=1", "TOKEN=${var.hf_token}"]
}
`

// Values computed from a sensitive variable, through interpolation,
// locals and functions, are recorded as field paths in the encoding of the
// spec; fields the model tags sensitive are listed too.
func TestSensitivePaths(t *testing.T) {
	cfg, diags, _ := loadFiles(t, map[string]string{"main.dstack.hcl": sensitiveConfig},
		load.Options{Vars: []string{"hf_token=hf_SECRET_123"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for addr, want := range map[string][]string{
		"task.t":    {"commands[1]", "env.HF_TOKEN", "env.UPPER", "registry_auth.password"},
		"task.list": {"env.TOKEN"},
	} {
		a, _ := lang.ParseAddress(addr)
		r := cfg.Resources[a]
		if diff := cmp.Diff(want, r.SensitivePaths()); diff != "" {
			t.Errorf("%s sensitive paths (-want +got):\n%s", addr, diff)
		}
	}
	// The job still gets the value.
	if got := specJSON(t, cfg, "task.t"); !strings.Contains(got, `"HF_TOKEN":"hf_SECRET_123"`) {
		t.Errorf("the spec lost the value: %s", got)
	}
}

// A message that quotes a value never shows a sensitive variable's value,
// whether HCL, the decoder, validation or the variable's own
// error_message wrote it.
func TestSensitiveValuesScrubbedFromMessages(t *testing.T) {
	files := map[string]string{"main.dstack.hcl": `variable "secret" {
  sensitive = true
  validation {
    condition     = var.secret == "expected"
    error_message = "too short: ${var.secret}"
  }
}

task "t" {
  commands = ["true"]
  nodes    = var.secret
  spot_policy = var.secret
  env      = { (var.secret) = "x" }
}
`}
	_, diags, dir := loadFiles(t, files, load.Options{Vars: []string{"secret=s3cr3t-VALUE"}})
	got := strings.Join(diagLines(diags, dir, true), "\n")
	if strings.Contains(got, "s3cr3t-VALUE") {
		t.Errorf("a message shows the secret:\n%s", got)
	}
	for _, want := range []string{"The error message refers to a sensitive value", "Sensitive value as a key", "(sensitive value)"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}
