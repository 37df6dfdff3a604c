package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

func blobPath(hash string) string { return "/blobs/" + url.PathEscape(hash) }

// HasBlob reports whether the agent stores the blob with SHA-256 hash.
func (c *Client) HasBlob(ctx context.Context, hash string) (bool, error) {
	status, err := c.do(ctx, http.MethodHead, blobPath(hash), nil, nil, nil)
	if status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// PutBlob uploads the file at path as the blob hash unless the agent has
// it already, and reports whether it sent the file. The agent checks the
// bytes against the hash.
func (c *Client) PutBlob(ctx context.Context, hash, path string) (bool, error) {
	has, err := c.HasBlob(ctx, hash)
	if err != nil || has {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", hash, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", hash, err)
	}
	req, err := c.request(ctx, http.MethodPut, blobPath(hash), nil, nil)
	if err != nil {
		return false, err
	}
	req.Body, req.ContentLength = io.NopCloser(f), fi.Size()
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("PUT %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return false, responseError(http.MethodPut, req.URL.Path, resp)
	}
	return resp.StatusCode == http.StatusCreated, nil
}
