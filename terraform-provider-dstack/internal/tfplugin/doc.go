// Package tfplugin is the thin adapter between the dstack Terraform
// provider and terraform-plugin-go (protocol 6). It is the only package
// of the provider that imports terraform-plugin-go: the library changes
// often, and its churn stays here.
//
// The provider side speaks this package's own small vocabulary: a
// [Schema] of attributes and nested blocks, values as plain Go data (nil
// for null, [Unknown] for a value known only after apply, string,
// float64, bool, []any for lists, map[string]any for maps and objects),
// [Path]s into them, and [Diagnostics]. [Serve] runs a [Provider] as a
// plugin; [NewServer] returns the tfprotov6 server itself, for tests that
// call its methods in-process.
package tfplugin
