// Package lang is dstack's configuration model: one Go type per resource
// kind (Task, Service, DevEnvironment, Fleet, Volume, Gateway), the
// diagnostics every loading step reports through, and the decoder that
// fills the model from either syntax.
//
// Where to start: load.Files (in lang/load) reads a configuration;
// Config holds the result, one Resource per address (`fleet.trainers`),
// each with its typed Spec, the source range of every field, its
// dependency edges and a content hash.
//
// How the pieces fit: the front-ends (lang/yamlconf for dstack's YAML,
// lang/hclconf for HCL) turn their syntax trees into Nodes, a small
// syntax-neutral tree of mappings, lists and scalars with source ranges.
// DecodeResource then fills the model from Nodes by reflection over the
// model's struct tags, and checks the rules that span fields. The same
// tags drive the JSON Schema (Schema), so field names, required fields
// and allowed values are written once, on the model. Types with several
// written forms (a port as 8080, "80:8080" or a mapping) implement
// NodeDecoder; the resources grammar (gpu: "A100:80GB:2") lives in
// lang/resources.
//
// A Spec's JSON (json.Marshal of it) is what state records and providers
// are handed; DecodeSpec reads it back into the same model, and is the
// one way the rest of the project does.
//
// Problems with what the user wrote are Diagnostics, collected rather than
// returned at the first: a load reports every mistake in every file, with
// file, line, column and field. WriteText and WriteJSON render them.
//
// This package imports nothing of the project outside lang/.
package lang
