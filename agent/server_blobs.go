package agent

import (
	"net/http"
	"strconv"
)

// HeaderBlobsStored is the response header of HEAD and PUT /blobs/{sha256}
// that counts the blobs the agent has stored since it started: a client
// (or a test) sees from it whether an upload stored anything.
const HeaderBlobsStored = "X-Blobs-Stored"

// headBlob answers 200 when the blob is stored, 404 when not.
func (s *Server) headBlob(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderBlobsStored, strconv.FormatInt(s.m.BlobsStored(), 10))
	if !s.m.HasBlob(r.PathValue("sha256")) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// putBlob stores the body as the blob, 201 when stored, 200 when the
// agent had it already. The body is not bounded by maxBodyBytes: a
// repository's archive may be large, and is checked against its hash.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	created, err := s.m.PutBlob(r.PathValue("sha256"), r.Body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set(HeaderBlobsStored, strconv.FormatInt(s.m.BlobsStored(), 10))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, struct {
		SHA256  string `json:"sha256"`
		Created bool   `json:"created"`
	}{r.PathValue("sha256"), created})
}
