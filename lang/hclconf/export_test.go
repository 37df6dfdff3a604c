package hclconf

import "github.com/dstackai/dstack-go/lang"

// Load parses and evaluates the HCL files of one configuration and
// returns their resources.
func Load(files []File, opts Options) ([]lang.RawResource, lang.Diagnostics) {
	res, diags := LoadConfig(files, opts)
	return res.Resources, diags
}
