package hclconf

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// largeConfig is n resources of several shapes, big enough to be parsed
// in pieces, with extra inserted after block half.
func largeConfig(n int, extra string) string {
	var sb strings.Builder
	sb.WriteString("variable \"region\" {\n  default = \"us-east-1\"\n}\n\nlocals {\n  size = \"100GB\"\n}\n\n")
	for i := range n {
		if i == n/2 {
			sb.WriteString(extra)
		}
		switch i % 3 {
		case 0:
			fmt.Fprintf(&sb, "volume \"v%d\" {\n  backend = \"aws\"\n  region  = var.region\n  size    = local.size\n}\n\n", i)
		case 1:
			fmt.Fprintf(&sb, "# task %d\ntask \"t%d\" {\n  image    = \"python:3.12\"\n  commands = [\"echo ${upper(\"x\")}\", <<-EOT\n    python train.py \\\n      --n %d\n    EOT\n  ]\n  resources {\n    gpu = \"A100:1\"\n  }\n}\n", i, i, i)
		default:
			fmt.Fprintf(&sb, "fleet \"f%d\" {\n  nodes = %d\n  resources {\n    gpu = \"24GB..:1..2\"\n  }\n  depends_on = [volume.v0]\n}\n\n", i, i%4+1)
		}
	}
	return sb.String()
}

// TestPiecesParseLikeWholeFile: a large file parsed in pieces gives the
// same blocks (ranges included) and diagnostics as a parse of the whole
// file, also where a cut would fall inside a heredoc or a comment, with
// top-level attributes and with syntax errors.
func TestPiecesParseLikeWholeFile(t *testing.T) {
	tests := []struct {
		name, extra string
		pieces      bool // parsed in pieces, not again whole
	}{
		{"plain", "", true},
		{"heredoc holding blocks", "task \"h\" {\n  commands = [<<EOT\n}\nvolume \"fake\" {\n  size = \"1GB\"\n}\nEOT\n  ]\n}\n\n", false},
		{"comment holding blocks", "/*\n}\nvolume \"fake\" {\n}\n*/\n\n", false},
		{"top-level attribute", "oops = 1\n\n", false},
		{"duplicate top-level attribute", "oops = 1\n\n" + strings.Repeat("volume \"pad\" {\n  size = \"1GB\"\n}\n\n", 40) + "oops = 2\n\n", false},
		{"syntax error", "volume \"broken\" {\n  size = \n}\n\n", false},
		{"unclosed block", "volume \"open\" {\n  size = \"1GB\"\n\n", false},
		{"CRLF", strings.ReplaceAll("volume \"crlf\" {\n  size = \"1GB\"\n}\n\n", "\n", "\r\n"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(largeConfig(300, tc.extra))
			if len(src) < pieceMinFile {
				t.Fatalf("the test file is %d bytes, too small to be cut", len(src))
			}
			if ps := splitFile(0, src, pieceSize); len(ps) < 5 {
				t.Fatalf("cut into %d pieces, want many", len(ps))
			}
			files := []File{{Name: "big.dstack.hcl", Src: src}}
			bodies, diags := parseFiles(files)
			wf, wdiags := hclsyntax.ParseConfig(src, "big.dstack.hcl", hcl.InitialPos)
			if got, want := diagText(diags[0]), diagText(wdiags); got != want {
				t.Fatalf("diagnostics in pieces:\n%s\nwhole:\n%s", got, want)
			}
			whole := wf.Body.(*hclsyntax.Body)
			if wdiags.HasErrors() {
				return
			}
			if !reflect.DeepEqual(bodies[0].Blocks, whole.Blocks) {
				t.Fatalf("blocks parsed in pieces differ from the whole file's")
			}
			if !reflect.DeepEqual(bodies[0].Attributes, whole.Attributes) {
				t.Fatalf("attributes parsed in pieces differ from the whole file's")
			}
			// Cut at every block start, inside the heredoc and the
			// comment too: the pieces must not be joined there.
			ps := splitFile(0, src, 1)
			b, joined := join(parsePieces(ps, files), files[0])
			if joined != tc.pieces {
				t.Fatalf("joined from %d pieces: %v, want %v", len(ps), joined, tc.pieces)
			}
			if joined && !reflect.DeepEqual(b.Blocks, whole.Blocks) {
				t.Fatalf("blocks parsed one per piece differ from the whole file's")
			}
		})
	}
}

func parsePieces(ps []piece, files []File) []piece {
	for i := range ps {
		f, d := hclsyntax.ParseConfig(ps[i].src, files[ps[i].file].Name, ps[i].start)
		ps[i].diags = d
		if f != nil {
			ps[i].body, _ = f.Body.(*hclsyntax.Body)
		}
	}
	return ps
}

func diagText(ds hcl.Diagnostics) string {
	var sb strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&sb, "%v %s: %s (%v)\n", d.Severity, d.Summary, d.Detail, d.Subject)
	}
	return sb.String()
}

// BenchmarkLoadOneLargeFile loads 1,000 resources from one file, the
// shape of the plan benchmarks' configuration.
func BenchmarkLoadOneLargeFile(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "volume \"v%d\" {\n  backend = \"aws\"\n  region  = \"us-east-1\"\n  size    = \"100GB\"\n}\n\n", i)
	}
	files := []File{{Name: "main.dstack.hcl", Src: []byte(sb.String())}}
	opts := Options{BaseDir: b.TempDir()}
	for b.Loop() {
		if _, diags := LoadConfig(files, opts); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
