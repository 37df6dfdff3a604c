package hclconf

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/dstackai/dstack-go/lang/internal/parallel"
)

// A large file is parsed in pieces of a few top-level blocks each, the
// pieces on all CPUs, and their blocks joined in order. Besides using
// more than one CPU for one file, this allocates less: hclsyntax lexes a
// file into one token slice that grows by a quarter at a time once it is
// large, allocating about five times its final size (40% of everything a
// plan of 1,000 resources in one file allocated), while a piece's slice
// stays in the range where append doubles.
//
// A piece starts where a line starts with a letter and the last line
// before it that is not empty is "}": the start of a top-level block, unless the "}" line is
// inside a heredoc or a multi-line comment. A piece cut inside one of
// those ends with it unterminated, which is a parse error; so is a piece
// cut inside an unclosed block. Any error in any piece, and any top-level
// attribute (whose duplicates only a parse of the whole file would see),
// makes the file be parsed whole, so its diagnostics are exactly those of
// a whole parse.
const (
	pieceMinFile = 16 << 10 // smaller files are parsed whole
	pieceSize    = 4 << 10  // a piece ends at the first block start past this many bytes
)

// piece is a part of a file that starts at a line start.
type piece struct {
	file  int
	start hcl.Pos
	src   []byte
	body  *hclsyntax.Body
	diags hcl.Diagnostics
}

// splitFile cuts src into pieces of about size bytes, each starting at
// what looks like a top-level block.
func splitFile(file int, src []byte, size int) []piece {
	var out []piece
	start, startLine := 0, 1
	line := 1
	afterBrace := false // the last line that is not blank is "}"
	for i := 0; i < len(src); {
		if i-start >= size && afterBrace && isLetter(src[i]) {
			out = append(out, piece{file: file, start: hcl.Pos{Line: startLine, Column: 1, Byte: start}, src: src[start:i]})
			start, startLine = i, line
		}
		nl := bytes.IndexByte(src[i:], '\n')
		if nl < 0 {
			break
		}
		if text := src[i : i+nl]; len(text) > 0 {
			afterBrace = len(text) == 1 && text[0] == '}'
		}
		i += nl + 1
		line++
	}
	return append(out, piece{file: file, start: hcl.Pos{Line: startLine, Column: 1, Byte: start}, src: src[start:]})
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// parseFiles parses every file, large ones in pieces, on all CPUs.
func parseFiles(files []File) ([]*hclsyntax.Body, []hcl.Diagnostics) {
	var pieces []piece
	for i, f := range files {
		if len(f.Src) < pieceMinFile {
			pieces = append(pieces, piece{file: i, start: hcl.InitialPos, src: f.Src})
			continue
		}
		pieces = append(pieces, splitFile(i, f.Src, pieceSize)...)
	}
	parallel.ForEach(len(pieces), func(i int) {
		p := &pieces[i]
		f, diags := hclsyntax.ParseConfig(p.src, files[p.file].Name, p.start)
		p.diags = diags
		if f != nil {
			p.body, _ = f.Body.(*hclsyntax.Body)
		}
	})

	bodies := make([]*hclsyntax.Body, len(files))
	diags := make([]hcl.Diagnostics, len(files))
	var whole []int // files to parse again in one piece
	for i := 0; i < len(pieces); {
		j := i
		for j < len(pieces) && pieces[j].file == pieces[i].file {
			j++
		}
		file := pieces[i].file
		if j-i == 1 {
			bodies[file], diags[file] = pieces[i].body, pieces[i].diags
		} else if b, ok := join(pieces[i:j], files[file]); ok {
			bodies[file] = b
		} else {
			whole = append(whole, file)
		}
		i = j
	}
	parallel.ForEach(len(whole), func(k int) {
		i := whole[k]
		f, d := hclsyntax.ParseConfig(files[i].Src, files[i].Name, hcl.InitialPos)
		diags[i] = d
		if f != nil {
			bodies[i], _ = f.Body.(*hclsyntax.Body)
		}
	})
	return bodies, diags
}

// join makes one body of a file's pieces, or says the file must be
// parsed whole.
func join(ps []piece, f File) (*hclsyntax.Body, bool) {
	n := 0
	for _, p := range ps {
		if p.diags.HasErrors() || len(p.diags) > 0 || p.body == nil || len(p.body.Attributes) > 0 {
			return nil, false
		}
		n += len(p.body.Blocks)
	}
	last := ps[len(ps)-1].body
	b := &hclsyntax.Body{
		Attributes: hclsyntax.Attributes{},
		Blocks:     make(hclsyntax.Blocks, 0, n),
		SrcRange:   hcl.Range{Filename: f.Name, Start: hcl.InitialPos, End: last.SrcRange.End},
		EndRange:   last.EndRange,
	}
	for _, p := range ps {
		b.Blocks = append(b.Blocks, p.body.Blocks...)
	}
	return b, true
}
