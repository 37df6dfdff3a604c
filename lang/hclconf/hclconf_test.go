package hclconf_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/hclconf"
	"github.com/dstackai/dstack-go/lang/load"
)

// loadFiles writes files into a temporary directory and loads the
// configuration files among them (the others are there for file() and
// -var-file). Var file names in opts are taken relative to that directory.
func loadFiles(t *testing.T, files map[string]string, opts load.Options) (*lang.Config, lang.Diagnostics, string) {
	t.Helper()
	dir := t.TempDir()
	var configs []string
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if load.IsConfigFile(name) {
			configs = append(configs, p)
		}
	}
	slices.Sort(configs)
	for i, vf := range opts.VarFiles {
		opts.VarFiles[i] = filepath.Join(dir, vf)
	}
	cfg, diags := load.Files(configs, opts)
	return cfg, diags, dir
}

// diagLines renders diagnostics as "file:line:col severity: summary" (or
// "- severity: summary" without a position), with the detail after " | "
// when withDetail is set. Paths are shown relative to dir.
func diagLines(diags lang.Diagnostics, dir string, withDetail bool) []string {
	var out []string
	for _, d := range diags {
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d", relTo(dir, d.Subject.Filename), d.Subject.Start.Line, d.Subject.Start.Column)
		}
		s := fmt.Sprintf("%s %s: %s", pos, d.Severity, d.Summary)
		if withDetail && d.Detail != "" {
			s += " | " + strings.ReplaceAll(d.Detail, dir+string(filepath.Separator), "")
		}
		out = append(out, s)
	}
	return out
}

func relTo(dir, name string) string {
	if r, err := filepath.Rel(dir, name); err == nil {
		return filepath.ToSlash(r)
	}
	return name
}

// specJSON is the compact JSON of the resource at addr.
func specJSON(t *testing.T, cfg *lang.Config, addr string) string {
	t.Helper()
	a, err := lang.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := cfg.Resources[a]
	if !ok {
		var have []string
		for a := range cfg.Resources {
			have = append(have, a.String())
		}
		t.Fatalf("no %s; have %v", addr, have)
	}
	b, err := json.Marshal(r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hclCase is one configuration loaded through load.Files: either the
// JSON of one resource is expected (and no diagnostics), or the
// diagnostics.
type hclCase struct {
	name  string
	files map[string]string
	opts  load.Options
	// addr and want: the resource's spec as compact JSON.
	addr, want string
	// wantDiags: diagLines with details.
	wantDiags []string
}

func runHCLCases(t *testing.T, tests []hclCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags, dir := loadFiles(t, tt.files, tt.opts)
			got := diagLines(diags, dir, true)
			if diff := cmp.Diff(tt.wantDiags, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tt.addr != "" {
				if diff := cmp.Diff(tt.want, specJSON(t, cfg, tt.addr)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tt.addr, diff)
				}
			}
		})
	}
}

const nodesVar = `variable "n" {
  type    = number
  default = 2
}

task "t" {
  nodes    = var.n
  commands = ["train"]
}
`

func TestVariables(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name:  "default",
			files: map[string]string{"main.dstack.hcl": nodesVar},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":2,"commands":["train"]}`,
		},
		{
			name:  "-var converted to the variable's type",
			files: map[string]string{"main.dstack.hcl": nodesVar},
			opts:  load.Options{Vars: []string{"n=3"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":3,"commands":["train"]}`,
		},
		{
			name:  "-var-file in HCL",
			files: map[string]string{"main.dstack.hcl": nodesVar, "prod.vars.hcl": "n = 4\n"},
			opts:  load.Options{VarFiles: []string{"prod.vars.hcl"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":4,"commands":["train"]}`,
		},
		{
			name:  "-var-file in JSON",
			files: map[string]string{"main.dstack.hcl": nodesVar, "prod.vars.json": `{"n": 5}`},
			opts:  load.Options{VarFiles: []string{"prod.vars.json"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":5,"commands":["train"]}`,
		},
		{
			name:  "DSTACK_VAR_ environment variable",
			files: map[string]string{"main.dstack.hcl": nodesVar},
			opts:  load.Options{Environ: []string{"HOME=/root", "DSTACK_VAR_n=6", "DSTACK_VAR_undeclared=1"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":6,"commands":["train"]}`,
		},
		{
			name:  "-var wins over -var-file wins over environment",
			files: map[string]string{"main.dstack.hcl": nodesVar, "a.vars.hcl": "n = 4\n", "b.vars.hcl": "n = 5\n"},
			opts:  load.Options{Environ: []string{"DSTACK_VAR_n=6"}, VarFiles: []string{"a.vars.hcl", "b.vars.hcl"}, Vars: []string{"n=7", "n=8"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":8,"commands":["train"]}`,
		},
		{
			name:  "later -var-file wins over environment",
			files: map[string]string{"main.dstack.hcl": nodesVar, "a.vars.hcl": "n = 4\n", "b.vars.hcl": "n = 5\n"},
			opts:  load.Options{Environ: []string{"DSTACK_VAR_n=6"}, VarFiles: []string{"a.vars.hcl", "b.vars.hcl"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":5,"commands":["train"]}`,
		},
		{
			name: "string, untyped and list variables",
			files: map[string]string{"main.dstack.hcl": `
variable "image" {
  type = string
}
variable "anything" {}
variable "cmds" {
  type = list(string)
}
task "t" {
  image    = var.image
  user     = var.anything
  commands = var.cmds
}
`},
			opts: load.Options{Vars: []string{"image=ubuntu:22.04", "anything=42", `cmds=["a", "b"]`}},
			addr: "task.t", want: `{"type":"task","name":"t","image":"ubuntu:22.04","user":"42","commands":["a","b"]}`,
		},
		{
			name: "validation passes",
			files: map[string]string{"main.dstack.hcl": `
variable "n" {
  type = number
  validation {
    condition     = var.n > 0
    error_message = "n must be positive."
  }
}
task "t" {
  nodes    = var.n
  commands = ["train"]
}
`},
			opts: load.Options{Vars: []string{"n=1"}},
			addr: "task.t", want: `{"type":"task","name":"t","nodes":1,"commands":["train"]}`,
		},
		{
			name: "validation fails",
			files: map[string]string{"main.dstack.hcl": `
variable "n" {
  type = number
  validation {
    condition     = var.n > 0
    error_message = "n must be positive."
  }
}
task "t" {
  nodes    = var.n
  commands = ["train"]
}
`},
			opts: load.Options{Vars: []string{"n=0"}},
			wantDiags: []string{
				`main.dstack.hcl:2:10 error: Invalid value for variable "n" | n must be positive.`,
				// The value still reaches the task, where it is wrong too.
				`main.dstack.hcl:10:14 error: Invalid nodes | A task needs at least 1 node, got 0.`,
			},
		},
		{
			name: "missing required variable",
			files: map[string]string{"main.dstack.hcl": `variable "n" {
  type = number
}
task "t" {
  nodes    = var.n
  commands = ["train"]
}
`},
			wantDiags: []string{
				`main.dstack.hcl:1:10 error: No value for required variable "n" | Set it with -var n=..., a -var-file, or the environment variable DSTACK_VAR_n, or give it a default.`,
			},
		},
		{
			name:      "undeclared -var",
			files:     map[string]string{"main.dstack.hcl": nodesVar},
			opts:      load.Options{Vars: []string{"nn=3"}},
			wantDiags: []string{`- error: Value for undeclared variable "nn" | Did you mean "n"? Declare it with a variable block first.`},
		},
		{
			name:      "-var without =",
			files:     map[string]string{"main.dstack.hcl": nodesVar},
			opts:      load.Options{Vars: []string{"n"}},
			wantDiags: []string{`- error: Invalid -var option | The option -var "n" must be NAME=VALUE.`},
		},
		{
			name:  "-var that is not a number",
			files: map[string]string{"main.dstack.hcl": nodesVar},
			opts:  load.Options{Vars: []string{"n=three"}},
			wantDiags: []string{
				`- error: Invalid value for variable "n" | The value from -var n is not a valid number expression: -var n:1,1-6: Variables not allowed; Variables may not be used here.`,
			},
		},
		{
			name:  "-var-file value of the wrong type",
			files: map[string]string{"main.dstack.hcl": nodesVar, "bad.vars.hcl": "n = \"many\"\n"},
			opts:  load.Options{VarFiles: []string{"bad.vars.hcl"}},
			wantDiags: []string{
				`bad.vars.hcl:1:5 error: Invalid value for variable "n" | The value from ` + "bad.vars.hcl" + ` is not a valid number: a number is required.`,
			},
		},
		{
			name:  "-var-file setting an undeclared variable",
			files: map[string]string{"main.dstack.hcl": nodesVar, "extra.vars.hcl": "n = 3\nm = 1\n"},
			opts:  load.Options{VarFiles: []string{"extra.vars.hcl"}},
			addr:  "task.t", want: `{"type":"task","name":"t","nodes":3,"commands":["train"]}`,
			wantDiags: []string{`extra.vars.hcl:2:5 warning: Value for undeclared variable "m" | The file sets "m", but no variable block declares it.`},
		},
		{
			name: "default of the wrong type",
			files: map[string]string{"main.dstack.hcl": `variable "n" {
  type    = number
  default = "x"
}
`},
			wantDiags: []string{`main.dstack.hcl:3:13 error: Invalid default value for variable | var.n: a number is required.`},
		},
		{
			name: "duplicate variable",
			files: map[string]string{
				"a.dstack.hcl": "variable \"n\" {\n  default = 1\n}\n",
				"b.dstack.hcl": "variable \"n\" {\n  default = 2\n}\n",
			},
			wantDiags: []string{`b.dstack.hcl:1:10 error: Duplicate variable "n" | var.n is also declared at a.dstack.hcl:1:10.`},
		},
		{
			name: "variables are shared by the files of a configuration",
			files: map[string]string{
				"a.dstack.hcl": "variable \"gpu\" {\n  default = \"H100:8\"\n}\n",
				"b.dstack.hcl": "fleet \"f\" {\n  nodes = 1\n  resources {\n    gpu = var.gpu\n  }\n}\n",
			},
			addr: "fleet.f", want: `{"type":"fleet","name":"f","nodes":{"min":1,"max":1},"resources":{"gpu":"H100:8"}}`,
		},
	})
}

func TestLocals(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name: "locals referring to locals and variables",
			files: map[string]string{"main.dstack.hcl": `
variable "epochs" {
  default = 3
}
locals {
  cmd    = "${local.script} --epochs ${local.epochs}"
  script = "python ${local.file}"
}
locals {
  file   = "train.py"
  epochs = var.epochs * 2
}
task "t" {
  commands = [local.cmd]
}
`},
			addr: "task.t", want: `{"type":"task","name":"t","commands":["python train.py --epochs 6"]}`,
		},
		{
			name: "cycle",
			files: map[string]string{"main.dstack.hcl": `locals {
  a = local.b
  b = "${local.c}-x"
  c = local.a
  d = "fine"
}
task "t" {
  commands = [local.a, local.d]
}
`},
			wantDiags: []string{`main.dstack.hcl:2:3 error: Cycle in locals | These locals refer to each other: local.a, local.b, local.c.`},
		},
		{
			name:      "self reference",
			files:     map[string]string{"main.dstack.hcl": "locals {\n  a = [local.a]\n}\n"},
			wantDiags: []string{`main.dstack.hcl:2:3 error: Cycle in locals | These locals refer to each other: local.a.`},
		},
		{
			name: "duplicate local",
			files: map[string]string{
				"a.dstack.hcl": "locals {\n  x = 1\n}\n",
				"b.dstack.hcl": "locals {\n  x = 2\n}\n",
			},
			wantDiags: []string{`b.dstack.hcl:2:3 error: Duplicate local "x" | local.x is also defined at a.dstack.hcl:2:3.`},
		},
		{
			name:  "undefined local",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [local.nope]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:2:20 error: Unsupported attribute | This object does not have an attribute named "nope".`,
			},
		},
	})
}

func TestFunctions(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name: "format, upper, join, merge",
			files: map[string]string{"main.dstack.hcl": `
task "t" {
  image    = format("%s:%d", "trainer", 3)
  user     = upper("root")
  commands = [join(" ", ["python", "train.py"])]
  env      = merge({ A = "1", B = "1" }, { B = "2" })
}
`},
			addr: "task.t", want: `{"type":"task","name":"t","image":"trainer:3","user":"ROOT","env":{"A":"1","B":"2"},"commands":["python train.py"]}`,
		},
		{
			name: "file is relative to the configuration's directory",
			files: map[string]string{
				"conf/main.dstack.hcl": "task \"t\" {\n  commands = split(\"\\n\", trimspace(file(\"scripts/run.sh\")))\n}\n",
				"conf/scripts/run.sh":  "pip install -r requirements.txt\npython train.py\n",
			},
			addr: "task.t", want: `{"type":"task","name":"t","commands":["pip install -r requirements.txt","python train.py"]}`,
		},
		{
			name:  "file that does not exist",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [file(\"missing.sh\")]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:2:15 error: Error in function call | Call to function "file" failed: reading missing.sh: stat missing.sh: no such file or directory.`,
			},
		},
		{
			name:  "unknown function",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [shell(\"ls\")]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:2:15 error: Call to unknown function | There is no function named "shell".`,
			},
		},
	})
}

func TestReferences(t *testing.T) {
	files := map[string]string{"main.dstack.hcl": `fleet "trainers" {
  nodes = 2
}

volume "data" {
  backend = "aws"
  region  = "us-east-1"
  size    = "100GB"
}

task "base" {
  image    = "pytorch/pytorch:2.4"
  commands = ["train"]
}

task "train" {
  image    = task.base.image
  fleets   = [fleet.trainers.name]
  commands = task.base.commands
  env = {
    VOLUME_ID = volume.data.id
  }
}

task "after" {
  commands   = ["eval"]
  depends_on = [task.train, volume.data]
}
`}
	cfg, diags, dir := loadFiles(t, files, load.Options{})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diagLines(diags, dir, true))
	}
	type dep struct{ To, Reason, At string }
	deps := func(addr string) []dep {
		a, _ := lang.ParseAddress(addr)
		var out []dep
		for _, d := range cfg.Resources[a].DependsOn {
			out = append(out, dep{d.To.String(), d.Reason, fmt.Sprintf("%d:%d-%d", d.Range.Start.Line, d.Range.Start.Column, d.Range.End.Column)})
		}
		return out
	}
	// References make edges where they are written; one edge per
	// resource, the first written; the implicit fleets edge is folded in.
	if diff := cmp.Diff([]dep{
		{"fleet.trainers", "reference", "18:15-34"},
		{"task.base", "reference", "17:14-29"},
		{"volume.data", "reference", "21:17-31"},
	}, deps("task.train")); diff != "" {
		t.Errorf("task.train dependencies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]dep{
		{"task.train", "depends_on", "27:17-27"},
		{"volume.data", "depends_on", "27:29-40"},
	}, deps("task.after")); diff != "" {
		t.Errorf("task.after dependencies (-want +got):\n%s", diff)
	}
	if got := specJSON(t, cfg, "task.train"); got != `{"type":"task","name":"train","image":"pytorch/pytorch:2.4","env":{"VOLUME_ID":""},"fleets":["trainers"],"commands":["train"]}` {
		t.Errorf("task.train = %s", got)
	}
	// volume.data.id is known only after apply.
	train := cfg.Resources[lang.Address{Kind: lang.KindTask, Name: "train"}]
	if diff := cmp.Diff([]string{"env.VOLUME_ID"}, train.Unknown); diff != "" {
		t.Errorf("Unknown (-want +got):\n%s", diff)
	}
	base := cfg.Resources[lang.Address{Kind: lang.KindTask, Name: "base"}]
	if len(base.Unknown) != 0 || len(base.DependsOn) != 0 {
		t.Errorf("task.base: Unknown %v, DependsOn %v; want none", base.Unknown, base.DependsOn)
	}
}

func TestReferenceErrors(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name:  "depends_on an undeclared resource",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands   = [\"a\"]\n  depends_on = [fleet.nope]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:3:17 error: Reference to undeclared resource fleet.nope | No fleet named "nope" is declared in this configuration.`,
			},
		},
		{
			name:  "depends_on entry that is not an address",
			files: map[string]string{"main.dstack.hcl": "fleet \"f\" {\n  nodes = 1\n}\ntask \"t\" {\n  commands   = [\"a\"]\n  depends_on = [\"fleet.f\", fleet.f.name]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:6:17 error: Invalid depends_on entry | Each entry is a resource address such as fleet.trainers or volume.data.`,
				`main.dstack.hcl:6:28 error: Invalid depends_on entry | Each entry is a resource address such as fleet.trainers or volume.data.`,
			},
		},
		{
			name:  "reference to an undeclared resource",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [\"a\"]\n  fleets   = [fleet.nope.name]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:3:15 error: Reference to undeclared resource fleet.nope | No fleet named "nope" is declared in this configuration.`,
			},
		},
		{
			name:  "self reference",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands   = [\"a\"]\n  depends_on = [task.t]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:3:17 error: Self-referential resource | task.t refers to itself.`,
			},
		},
		{
			name: "reference to a resource declared in YAML",
			files: map[string]string{
				"a.dstack.yml": "type: fleet\nname: gpu\nnodes: 1\n",
				"b.dstack.hcl": "task \"t\" {\n  commands = [\"a\"]\n  fleets   = [fleet.gpu.name]\n}\n",
			},
			addr: "task.t", want: `{"type":"task","name":"t","fleets":["gpu"],"commands":["a"]}`,
		},
	})
}

func TestBlocks(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name: "repeated nested blocks make a list",
			files: map[string]string{"main.dstack.hcl": `task "t" {
  commands = ["a"]
  volumes {
    name = "data"
    path = "/data"
  }
  volumes {
    instance_path = "/mnt"
    path          = "/mnt"
  }
}
`},
			addr: "task.t", want: `{"type":"task","name":"t","volumes":[{"name":"data","path":"/data"},{"instance_path":"/mnt","path":"/mnt"}],"commands":["a"]}`,
		},
		{
			name:  "one block for a list field is a list of one",
			files: map[string]string{"main.dstack.hcl": "service \"s\" {\n  image = \"nginx\"\n  port  = 80\n  probes {\n    type = \"http\"\n  }\n}\n"},
			addr:  "service.s", want: `{"type":"service","name":"s","image":"nginx","port":{"local_port":80,"container_port":80},"probes":[{"type":"http"}]}`,
		},
		{
			name:  "attribute and block of the same name",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [\"a\"]\n  env = { A = \"1\" }\n  env {\n    B = \"2\"\n  }\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:4:3 error: Duplicate field "env" | "env" is also set as an attribute at main.dstack.hcl:3:3.`,
			},
		},
		{
			name:  "name and type attributes inside a resource block",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  name     = \"other\"\n  type     = \"service\"\n  commands = [\"a\"]\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:2:3 error: Unexpected attribute "name" | In HCL the block type gives the kind and the block label gives the name: task "t" { ... }.`,
				`main.dstack.hcl:3:3 error: Unexpected attribute "type" | In HCL the block type gives the kind and the block label gives the name: task "t" { ... }.`,
			},
		},
		{
			name:  "label on a nested block",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [\"a\"]\n  resources \"big\" {\n    gpu = \"A100\"\n  }\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:3:13 error: Unexpected label on resources block | Blocks inside a resource take no labels.`,
			},
		},
		{
			name:  "unknown top-level block",
			files: map[string]string{"main.dstack.hcl": "tsak \"t\" {\n  commands = [\"a\"]\n}\n\nfleets \"f\" {\n}\n\ncluster \"c\" {\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:1:1 error: Unsupported block type "tsak" | Did you mean "task"? Top-level blocks are dstack, variable, locals, task, service, dev-environment, fleet, volume, gateway.`,
				`main.dstack.hcl:5:1 error: Unsupported block type "fleets" | Did you mean "fleet"? Top-level blocks are dstack, variable, locals, task, service, dev-environment, fleet, volume, gateway.`,
				`main.dstack.hcl:8:1 error: Unsupported block type "cluster" | Top-level blocks are dstack, variable, locals, task, service, dev-environment, fleet, volume, gateway.`,
			},
		},
		{
			name:  "top-level attribute",
			files: map[string]string{"main.dstack.hcl": "region = \"us-east-1\"\n"},
			wantDiags: []string{
				`main.dstack.hcl:1:1 error: Unexpected attribute "region" | Only blocks may appear at the top level: dstack, variable, locals, task, service, dev-environment, fleet, volume, gateway.`,
			},
		},
		{
			name:  "resource block labels",
			files: map[string]string{"main.dstack.hcl": "task {\n}\n\ntask \"a\" \"b\" {\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:1:1 error: A task block needs one label | Write task "NAME" { ... }; the label is the resource name.`,
				`main.dstack.hcl:4:10 error: A task block needs one label | Write task "NAME" { ... }; the label is the resource name.`,
			},
		},
		{
			name:  "syntax error",
			files: map[string]string{"main.dstack.hcl": "task \"t\" {\n  commands = [\"a\"\n}\n"},
			wantDiags: []string{
				`main.dstack.hcl:3:1 error: Missing item separator | Expected a comma to mark the beginning of the next item.`,
			},
		},
	})
}

func TestBlockRanges(t *testing.T) {
	src := `task "t" {
  commands = ["a"]
  volumes {
    name = "data"
    path = "/data"
  }
  volumes {
    instance_path = "/mnt"
    path          = "/mnt"
  }
}
`
	raws, diags := hclconf.Load([]hclconf.File{{Name: "t.dstack.hcl", Src: []byte(src)}}, hclconf.Options{BaseDir: t.TempDir()})
	if len(diags) > 0 || len(raws) != 1 {
		t.Fatalf("Load = %d resources, %v", len(raws), diags)
	}
	r, ds := lang.DecodeResource(raws[0])
	if len(ds) > 0 {
		t.Fatal(ds.Err())
	}
	if r.Syntax != "hcl" || r.Address.String() != "task.t" || r.NameRange.String() != "t.dstack.hcl:1:6" {
		t.Errorf("Syntax %q, Address %s, NameRange %s", r.Syntax, r.Address, r.NameRange)
	}
	got := map[string]string{}
	for _, p := range []string{"volumes", "volumes[0]", "volumes[1]", "volumes[1].path", "commands[0]"} {
		rg, _ := r.FieldRange(p)
		got[p] = fmt.Sprintf("%d:%d-%d:%d", rg.Start.Line, rg.Start.Column, rg.End.Line, rg.End.Column)
	}
	want := map[string]string{
		"volumes":         "3:3-10:4",
		"volumes[0]":      "3:3-6:4",
		"volumes[1]":      "7:3-10:4",
		"volumes[1].path": "9:21-9:27",
		"commands[0]":     "2:15-2:18",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
}

func TestDuplicateAddresses(t *testing.T) {
	runHCLCases(t, []hclCase{
		{
			name: "HCL and YAML",
			files: map[string]string{
				"a.dstack.hcl": "fleet \"gpu\" {\n  nodes = 1\n}\n",
				"b.dstack.yml": "type: fleet\nname: gpu\nnodes: 2\n",
			},
			wantDiags: []string{
				`a.dstack.hcl:1:7 error: Duplicate resource fleet.gpu | fleet.gpu is also declared at b.dstack.yml:2:7. Each resource needs a unique name within its kind.`,
			},
		},
		{
			name: "two HCL files",
			files: map[string]string{
				"a.dstack.hcl": "task \"x\" {\n  commands = [\"a\"]\n}\n",
				"b.dstack.hcl": "\n\ntask \"x\" {\n  commands = [\"b\"]\n}\n",
			},
			wantDiags: []string{
				`b.dstack.hcl:3:6 error: Duplicate resource task.x | task.x is also declared at a.dstack.hcl:1:6. Each resource needs a unique name within its kind.`,
			},
		},
		{
			name: "YAML default name and an HCL label",
			files: map[string]string{
				"train.dstack.yml": "type: task\ncommands: [a]\n",
				"z.dstack.hcl":     "task \"train\" {\n  commands = [\"b\"]\n}\n",
			},
			wantDiags: []string{
				`z.dstack.hcl:1:6 error: Duplicate resource task.train | task.train is also declared at train.dstack.yml:1:1. Each resource needs a unique name within its kind.`,
			},
		},
		{
			name: "same name, different kinds",
			files: map[string]string{
				"a.dstack.hcl": "fleet \"x\" {\n  nodes = 1\n}\n",
				"b.dstack.yml": "type: volume\nname: x\nbackend: aws\nregion: us-east-1\nsize: 1GB\n",
			},
			addr: "volume.x", want: `{"type":"volume","name":"x","backend":"aws","region":"us-east-1","size":"1GB"}`,
		},
	})
}

func TestBackendBlock(t *testing.T) {
	src := `dstack {
  backend "s3" {
    bucket         = "team-state"
    use_path_style = true
    region         = var.region
  }
}
`
	res, diags := hclconf.LoadConfig([]hclconf.File{{Name: "b.dstack.hcl", Src: []byte(src)}}, hclconf.Options{})
	if res.Backend == nil || res.Backend.Type != "s3" || res.Backend.Config["bucket"] != "team-state" || res.Backend.Config["use_path_style"] != "true" {
		t.Fatalf("backend %+v", res.Backend)
	}
	if len(diags) != 1 || diags[0].Subject == nil || diags[0].Subject.Start.Line != 5 || !strings.Contains(diags[0].Detail, "literal") {
		t.Fatalf("want one error at line 5 about literal values, got %v", diags)
	}
}
