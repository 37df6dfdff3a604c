// Command replica is a tiny service replica for the gateway's tests and
// benchmark, built as a static binary and imported into a container
// image: it listens on $PORT (8080) and answers
//
//	GET  /                      "hello from replica NAME" ($REPLICA_NAME, else the host name)
//	POST /v1/chat/completions   an OpenAI chat completion naming the request's model
//	POST /v1/completions        an OpenAI text completion
//	GET  /v1/models             the model $MODEL
//	GET  /events                two server-sent events, $SSE_GAP (2s) apart
//	GET  /ws                    a WebSocket that echoes every message
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/websocket"
)

func main() {
	name := os.Getenv("REPLICA_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	gap := 2 * time.Second
	if d, err := time.ParseDuration(os.Getenv("SSE_GAP")); err == nil {
		gap = d
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from replica %s path %s\n", name, r.URL.Path)
	})
	completion := func(object string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Model string `json:"model"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			text := "from replica " + name
			out := map[string]any{"id": "cmpl-1", "object": object, "created": time.Now().Unix(), "model": req.Model,
				"usage": map[string]int{"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}
			if object == "chat.completion" {
				out["choices"] = []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": text}}}
			} else {
				out["choices"] = []any{map[string]any{"index": 0, "finish_reason": "stop", "text": text}}
			}
			_ = json.NewEncoder(w).Encode(out)
		}
	}
	mux.HandleFunc("POST /v1/chat/completions", completion("chat.completion"))
	mux.HandleFunc("POST /v1/completions", completion("text_completion"))
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model"}]}`, os.Getenv("MODEL"))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(gap):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	mux.Handle("GET /ws", websocket.Handler(func(c *websocket.Conn) { _, _ = io.Copy(c, c) }))
	log.Printf("replica %s on :%s", name, port)
	log.Fatal(http.ListenAndServe(":"+port, mux))
}
