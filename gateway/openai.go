package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxModelBody bounds the request body the model endpoint reads to find
// the model's name.
const maxModelBody = 64 << 20

// serveModels is the OpenAI-compatible endpoint; path is what follows
// /v1 (or /proxy/models/PROJECT).
func (s *Server) serveModels(w http.ResponseWriter, r *http.Request, c *compiled, path string) {
	if !c.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dstack"`)
		writeOpenAIError(w, http.StatusUnauthorized, "invalid_request_error", "Not authenticated: send Authorization: Bearer TOKEN with a token from dstack token create")
		return
	}
	switch path {
	case "/models":
		if r.Method != http.MethodGet {
			writeOpenAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Use GET "+path)
			return
		}
		type model struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		}
		list := struct {
			Object string  `json:"object"`
			Data   []model `json:"data"`
		}{Object: "list", Data: []model{}}
		for _, rt := range c.modelList {
			list.Data = append(list.Data, model{ID: rt.svc.Model.Name, Object: "model", Created: rt.svc.Model.Created, OwnedBy: c.project})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	case "/chat/completions", "/completions":
		if r.Method != http.MethodPost {
			writeOpenAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Use POST "+path)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxModelBody+1))
		if err != nil {
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "Reading the request: "+err.Error())
			return
		}
		if len(body) > maxModelBody {
			writeOpenAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "The request body is too large")
			return
		}
		var req struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "The request body must be JSON with a \"model\"")
			return
		}
		rt := c.models[req.Model]
		if rt == nil {
			writeOpenAIError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("Model %s not found in project %s", req.Model, c.project))
			return
		}
		if f := rt.svc.Model.Format; f != "" && f != "openai" {
			writeOpenAIError(w, http.StatusNotImplemented, "invalid_request_error", fmt.Sprintf("Model %s speaks the %s format; this gateway routes models of format openai only", req.Model, f))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		prefix := strings.TrimSuffix(cmpOr(rt.svc.Model.Prefix, "/v1"), "/")
		s.forward(w, r, rt, prefix+path)
	default:
		writeOpenAIError(w, http.StatusNotFound, "invalid_request_error", "Unknown endpoint "+path+": the gateway serves /v1/models, /v1/chat/completions and /v1/completions")
	}
}

func writeOpenAIError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}
